"""What is transient, and how long to wait before the next try: the backoff every HTTP caller shares.

``ApiClient`` (``core.http``) and the download layer (``core.transfer``) both use it; docs/resend-rule.md says
which transient failures may be resent.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

from artifact_harvest.core.config import setting

#: bare answers that say the request was turned away before any work was done: safe to resend any call.
#: 429 only: a rate limiter refuses before forwarding; a bare 503 may come from a gateway after it forwarded.
REFUSED_STATUSES = frozenset({429})


@dataclass(frozen=True)
class RetryRule:
    """Exponential backoff with jitter; ``Retry-After`` wins when the provider sends one.

    Defaults come from ``[artifact_harvest] retry_attempts / retry_base_delay / retry_max_delay`` so tests
    and deployments can tune them with ``AIRFLOW__ARTIFACT_HARVEST__*`` variables.
    """

    attempts: int = field(default_factory=lambda: setting("retry_attempts", 5, int))
    base_delay: float = field(default_factory=lambda: setting("retry_base_delay", 1.0))
    max_delay: float = field(default_factory=lambda: setting("retry_max_delay", 60.0))
    jitter: float = 0.5
    #: a provider's own Retry-After is honoured up to this many seconds
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return ceiling * (1 - self.jitter * random.random())


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500

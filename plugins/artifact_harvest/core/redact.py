"""How secrets stay out of text bound for logs or exceptions: ``Redactor`` (known secrets and every URL query
string) and ``redact_url``. ``core.transfer.redaction`` builds the download layer's scrubber on them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

# a query string with at least one key=value, wherever it appears (full URLs, or bare paths in urllib3 errors)
_QUERY = re.compile(r"\?[^\s#'\"<>()?]*=[^\s#'\"<>()]*")


def redact_url(url: str) -> str:
    """The URL without its query string: signed URLs carry their credentials there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "***" if parts.query else "", ""))


class Redactor:
    """Removes known secrets and every URL query string from text bound for logs or exceptions.

    Airflow's masker covers task logs; this covers what the masker does not see: exception text that ends
    up in XCom, events or ``dags test`` output.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Redact ``secret`` from now on (and mask it in Airflow's logs); shorter than 4 characters: ignored."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)
            mask(secret)

    def __call__(self, text: str) -> str:
        text = _QUERY.sub("?***", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def mask(secret: str | None) -> None:
    """Register a runtime secret with Airflow's log masker (no-op outside Airflow)."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # pragma: no cover - masker unavailable in plain scripts
        pass

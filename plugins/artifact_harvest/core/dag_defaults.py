"""What every pipeline DAG shares, so DAG files stay thin: default args and tags."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "artifact-harvest"

#: every DAG the demo and the distributed test trigger carries this tag
PIPELINE_TAG = "pipeline"


def default_args(**overrides: Any) -> dict[str, Any]:
    """Retries with exponential backoff: remote APIs and large downloads fail transiently."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        **overrides,
    }


def tags(provider: str, *more: str) -> list[str]:
    return ["artifact-harvest", provider, *more]

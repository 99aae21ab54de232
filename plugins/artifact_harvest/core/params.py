"""Operator arguments that arrive as rendered templates, back to the types they stand for."""

from __future__ import annotations

from artifact_harvest.core.errors import InvalidParameterError


def as_bool(value: bool | str | None, field: str, provider: str = "artifact_harvest") -> bool:
    """A templated flag: rendered natively (bool) or as text ("True"/"false"); empty or None is False."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in ("true", "false", "", "none"):
        return text == "true"
    raise InvalidParameterError(provider, field, f"expected true or false, got {value!r}")

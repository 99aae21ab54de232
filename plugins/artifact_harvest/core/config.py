"""``[artifact_harvest]`` settings from Airflow's configuration (``AIRFLOW__ARTIFACT_HARVEST__*``).

``setting(key, default, type)`` returns the configured value converted with ``type`` (``boolean`` for flags), or
``default`` when the key is unset or Airflow's configuration is unavailable (plain scripts, benchmarks). Every
key with its default: docs/configuration.md; declared to Airflow (``airflow config list``) in
``artifact_harvest.provider_config``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
SECTION = "artifact_harvest"


def setting(key: str, default: T, type: Callable[[str], T] = float) -> T:  # noqa: A002 - reads like conf.get*
    """The value of ``[artifact_harvest] key`` as ``type`` (``float``, ``int``, ``str``...), else ``default``."""
    try:
        from airflow.configuration import conf

        raw = conf.get(SECTION, key, fallback=None)
    except Exception:  # configuration unavailable (plain scripts)
        return default
    if raw is None or str(raw).strip() == "":
        return default
    try:
        if type is int:  # "8388608.0" or "8e6" in a config file still means bytes
            return int(float(raw))  # type: ignore[return-value]
        return type(raw)
    except ValueError:
        raise ValueError(f"[{SECTION}] {key} = {raw!r} is not a valid {getattr(type, '__name__', type)}") from None


_TRUE, _FALSE = ("1", "t", "true", "yes", "on"), ("0", "f", "false", "no", "off")


def boolean(raw: str) -> bool:
    """A config flag, for ``setting``: what Airflow's ``getboolean`` takes (t/true/1, f/false/0) and yes/no/on/off,
    in any case; anything else raises ``ValueError``."""
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(raw)
    return value in _TRUE

"""What a job used, kept in its manifest as ``usage``: named quantities, each with a unit and a source.

``{"characters": {"value": 11, "unit": "characters", "source": "provider"}, ...}``. ``source`` says who
said so: ``provider`` (the provider's answer), ``request`` (what was sent, when the provider reports
nothing) or ``measured`` (counted here, e.g. the archived bytes). A manifest without ``usage`` (written before
it existed), or with an empty one, is *unknown*, never zero. Submit steps hand theirs to the download step in
XCom (``push``/``upstream``: small JSON, no secrets). Fields and sums: docs/object-storage.md, docs/ui.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

PROVIDER, REQUEST, MEASURED = "provider", "request", "measured"
#: a quantity from a better-placed source wins when two name the same thing
SOURCES = (PROVIDER, MEASURED, REQUEST)
XCOM_KEY = "artifact_harvest_usage"


@dataclass(frozen=True)
class Quantity:
    """One named amount: a number (summed) or a label such as ``768P`` (counted per value)."""

    value: int | float | str
    unit: str
    source: str

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, str)):
            raise TypeError(f"a usage value is a number or a string, not {type(self.value).__name__}")
        if self.source not in SOURCES:
            raise ValueError(f"usage source {self.source!r} is not one of {SOURCES}")

    @classmethod
    def reported(cls, value: int | float | str, unit: str = "") -> Quantity:
        """As the provider's answer says."""
        return cls(value, unit, PROVIDER)

    @classmethod
    def requested(cls, value: int | float | str, unit: str = "") -> Quantity:
        """As the request sent it (the provider reports nothing)."""
        return cls(value, unit, REQUEST)

    @classmethod
    def measured(cls, value: int | float | str, unit: str = "") -> Quantity:
        """As counted here."""
        return cls(value, unit, MEASURED)

    @property
    def numeric(self) -> bool:
        return not isinstance(self.value, str)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass(frozen=True)
class Usage:
    """Named quantities; empty means nothing is known."""

    quantities: Mapping[str, Quantity] = field(default_factory=dict)

    @classmethod
    def of(cls, **quantities: Quantity | None) -> Usage:
        """The given quantities; ``None`` ones (not known) are left out."""
        return cls({name: q for name, q in quantities.items() if q is not None})

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        """Read back ``to_dict()`` (a manifest's or an XCom's); malformed entries are dropped, not fatal."""
        quantities = {}
        for name, entry in (data.items() if isinstance(data, Mapping) else ()):
            try:
                quantities[str(name)] = Quantity(entry["value"], str(entry.get("unit") or ""), entry["source"])
            except (TypeError, ValueError, KeyError, AttributeError):
                log.warning("ignoring a malformed usage entry %r: %r", name, entry)
        return cls(quantities)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: q.to_dict() for name, q in sorted(self.quantities.items())}

    def merge(self, other: Usage) -> Usage:
        """Both sets; for a name in both, the better source (provider > measured > request), else ``other``."""
        merged = dict(self.quantities)
        for name, q in other.quantities.items():
            if name not in merged or SOURCES.index(q.source) <= SOURCES.index(merged[name].source):
                merged[name] = q
        return Usage(merged)

    def __contains__(self, name: object) -> bool:
        return name in self.quantities

    def __bool__(self) -> bool:
        return bool(self.quantities)


def push(context: Any, usage: Usage) -> None:
    """Hand ``usage`` to the download step (XCom ``XCOM_KEY`` of this task); nothing when empty."""
    ti = context.get("ti")
    if usage and ti is not None:
        ti.xcom_push(key=XCOM_KEY, value=usage.to_dict())


def upstream(context: Any, task: Any) -> Usage:
    """What the tasks upstream of ``task`` pushed with :func:`push` (merged; none pushed: empty). Pushers are
    unmapped tasks (a submit step): the pushes of a mapped one's instances would all be merged."""
    ti = context.get("ti")
    ids = sorted(task.get_flat_relative_ids(upstream=True)) if hasattr(task, "get_flat_relative_ids") else []
    if ti is None or not ids:
        return Usage()
    pulled = ti.xcom_pull(task_ids=ids, key=XCOM_KEY)
    usage = Usage()
    for value in pulled if isinstance(pulled, list) else [pulled]:
        if value:
            usage = usage.merge(Usage.from_dict(value))
    return usage


@dataclass
class Totals:
    """Usage added up over artifacts: numbers summed per (name, unit), labels counted per value."""

    artifacts: int = 0
    unknown: int = 0
    sums: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, raw: Any, count: int = 1) -> None:
        """``count`` artifacts with this manifest ``usage`` (None or empty: unknown)."""
        self.artifacts += count
        usage = Usage.from_dict(raw)
        if not usage:
            self.unknown += count
            return
        for name, q in usage.quantities.items():
            if q.numeric:
                entry = self.sums.setdefault((name, q.unit), {"total": 0, "artifacts": 0, "sources": {}})
                entry["total"] += q.value * count
            else:
                entry = self.labels.setdefault(name, {"values": {}, "artifacts": 0, "sources": {}})
                entry["values"][q.value] = entry["values"].get(q.value, 0) + count
            entry["artifacts"] += count
            entry["sources"][q.source] = entry["sources"].get(q.source, 0) + count

    def to_dict(self) -> dict[str, Any]:
        quantities = [{"name": n, "unit": u, **e} for (n, u), e in sorted(self.sums.items())]
        quantities += [{"name": n, "unit": "", **e} for n, e in sorted(self.labels.items())]
        return {"artifacts": self.artifacts, "unknown": self.unknown, "quantities": quantities}


def add_up(rows: Iterable[tuple[str, str, str, Any, int]]) -> list[dict[str, Any]]:
    """``(provider, dag_id, month, usage, count)`` rows (``count`` artifacts with that usage) as one
    :class:`Totals` per (provider, DAG, month): newest month first, then provider and DAG."""
    groups: dict[tuple[str, str, str], Totals] = {}
    for provider, dag_id, month, raw, count in rows:
        groups.setdefault((provider, dag_id, month), Totals()).add(raw, count)
    ordered = sorted(groups.items(), key=lambda item: (_desc(item[0][2]), item[0][0], item[0][1]))
    return [{"provider": p, "dag_id": d, "month": m, **t.to_dict()} for (p, d, m), t in ordered]


def _desc(month: str) -> tuple[int, ...]:
    """Sort key putting later ``YYYY-MM`` months first."""
    return tuple(-ord(c) for c in month)

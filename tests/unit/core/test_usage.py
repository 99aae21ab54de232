"""core.usage: the value type, its merge rule, reading back malformed input, and the sums the page shows."""

from __future__ import annotations

import pytest

from artifact_harvest.core.usage import Quantity, Totals, Usage, add_up, push, upstream


def test_round_trip_and_sources():
    usage = Usage.of(characters=Quantity.reported(11, "characters"), video_seconds=Quantity.requested(6, "s"),
                     export_size=Quantity.measured(10, "bytes"), unknown=None)
    data = usage.to_dict()
    assert data == {"characters": {"value": 11, "unit": "characters", "source": "provider"},
                    "export_size": {"value": 10, "unit": "bytes", "source": "measured"},
                    "video_seconds": {"value": 6, "unit": "s", "source": "request"}}
    assert Usage.from_dict(data) == usage and "unknown" not in usage


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}])
def test_a_value_is_a_number_or_a_label(value):
    with pytest.raises(TypeError):
        Quantity(value, "", "provider")


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="usage source"):
        Quantity(1, "", "guess")


def test_malformed_entries_are_dropped_not_fatal():
    usage = Usage.from_dict({"ok": {"value": 2, "unit": "s", "source": "request"}, "no_source": {"value": 1},
                             "bad_value": {"value": [1], "source": "provider"}, "not_a_dict": 3})
    assert set(usage.quantities) == {"ok"}
    assert not Usage.from_dict(None) and not Usage.from_dict("text") and not Usage.from_dict({})


def test_merge_prefers_the_provider_over_a_measurement_over_the_request():
    requested = Usage.of(resolution=Quantity.requested("768P"), video_seconds=Quantity.requested(6, "s"))
    reported = Usage.of(resolution=Quantity.reported("1366x768", "px"))
    assert requested.merge(reported).quantities["resolution"].value == "1366x768"
    assert reported.merge(requested).quantities["resolution"].value == "1366x768"  # either order
    assert requested.merge(reported).quantities["video_seconds"].value == 6
    measured = Usage.of(size=Quantity.measured(5, "bytes"))
    assert measured.merge(Usage.of(size=Quantity.requested(9, "bytes"))).quantities["size"].value == 5
    assert measured.merge(Usage.of(size=Quantity.reported(7, "bytes"))).quantities["size"].value == 7


def test_totals_sum_numbers_per_unit_count_labels_and_keep_unknown_apart():
    totals = Totals()
    totals.add({"characters": {"value": 11, "unit": "characters", "source": "provider"}})
    totals.add({"characters": {"value": 4, "unit": "characters", "source": "request"},
                "resolution": {"value": "768P", "unit": "", "source": "request"}})
    totals.add({"resolution": {"value": "768P", "unit": "", "source": "provider"}})
    totals.add(None)  # an old manifest: unknown, not zero
    totals.add({})
    assert totals.to_dict() == {
        "artifacts": 5, "unknown": 2,
        "quantities": [
            {"name": "characters", "unit": "characters", "total": 15, "artifacts": 2,
             "sources": {"provider": 1, "request": 1}},
            {"name": "resolution", "unit": "", "values": {"768P": 2}, "artifacts": 2,
             "sources": {"request": 1, "provider": 1}},
        ],
    }


def test_add_up_groups_per_provider_dag_and_month_newest_first():
    seconds = {"video_seconds": {"value": 6, "unit": "s", "source": "request"}}
    groups = add_up([("minimax", "video", "2026-04", seconds, 1), ("minimax", "video", "2026-05", seconds, 1),
                     ("minimax", "video", "2026-05", seconds, 1), ("qianfan", "export", "2026-05", None, 1),
                     ("minimax", "speech", "2026-05", None, 1)])
    assert [(g["month"], g["provider"], g["dag_id"]) for g in groups] == [
        ("2026-05", "minimax", "speech"), ("2026-05", "minimax", "video"), ("2026-05", "qianfan", "export"),
        ("2026-04", "minimax", "video")]
    assert groups[1]["quantities"][0]["total"] == 12 and groups[3]["quantities"][0]["total"] == 6
    assert (groups[2]["artifacts"], groups[2]["unknown"], groups[2]["quantities"]) == (1, 1, [])
    # the database hands over one row per distinct usage with its count: the same sums
    [counted] = add_up([("minimax", "video", "2026-05", seconds, 2)])
    assert counted == groups[1]


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: list[str], key: str) -> list:
        return [self.pushed.get(key) if t == "create" else None for t in task_ids]


class _Task:
    def get_flat_relative_ids(self, *, upstream: bool) -> set[str]:
        assert upstream
        return {"create", "wait"}


def test_push_then_upstream_hands_usage_to_the_download_step():
    ti = _TI()
    push({"ti": ti}, Usage())
    assert ti.pushed == {}  # nothing known: nothing pushed
    usage = Usage.of(characters=Quantity.reported(11, "characters"))
    push({"ti": ti}, usage)
    assert upstream({"ti": ti}, _Task()) == usage
    assert upstream({}, _Task()) == Usage()

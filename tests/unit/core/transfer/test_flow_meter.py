"""FlowMeter: one stream goes on as ranges only when it waits on the network *and* the machine has cores idle.

The clock and the machine's CPU counters are substituted: the decision is pure arithmetic on them."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import pytest

from artifact_harvest.core.transfer import flow as ranged
from artifact_harvest.core.transfer.flow import FlowMeter

MiB = 1 << 20
CpuTimes = namedtuple("CpuTimes", "user idle")  # what psutil.cpu_times() returns, in short


@pytest.fixture
def machine(monkeypatch):
    """A clock and CPU counters the test moves by hand."""
    state = SimpleNamespace(now=100.0, idle=0.0, busy=0.0)
    monkeypatch.setattr(ranged.time, "monotonic", lambda: state.now)
    monkeypatch.setattr(ranged.psutil, "cpu_times", lambda: CpuTimes(state.busy, state.idle))

    def advance(seconds: float, idle_share: float) -> None:
        state.now += seconds
        state.idle += 2 * seconds * idle_share  # two cores
        state.busy += 2 * seconds * (1 - idle_share)

    return advance


@pytest.mark.parametrize(("waiting", "idle", "bound"), [
    (0.9, 0.8, True),  # a per-flow cap: the reader waits and the cores idle
    (0.9, 0.1, False),  # waiting, but for a server that shares these cores (loopback)
    (0.2, 0.8, False),  # this machine is the limit (hashing, a slow disk)
])
def test_a_window_decides_on_waiting_and_idle_cores(machine, waiting, idle, bound):
    meter = FlowMeter(32 * MiB, offset=0)
    machine(2.0, idle)
    meter.waited(2.0 * waiting)

    assert meter.network_bound(64 * MiB) is bound
    assert meter.last[:2] == pytest.approx((waiting, idle))


def test_no_verdict_before_a_window_has_both_its_bytes_and_a_second(machine):
    meter = FlowMeter(32 * MiB, offset=0)
    machine(5.0, 0.9)
    meter.waited(5.0)
    assert not meter.network_bound(16 * MiB)  # a slow start: not enough bytes yet

    fast = FlowMeter(32 * MiB, offset=0)
    machine(0.25, 0.9)
    fast.waited(0.25)
    assert not fast.network_bound(64 * MiB)  # enough bytes, but not half a second of them

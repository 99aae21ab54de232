"""Remote job state machines driven by a clock: poll counts in tests, wall-clock seconds in the demo.

A provider builds a ``Job`` with the stage names its API reports (e.g. ``["queued", "running", "success"]``)
and calls ``observe`` from its status route. The last stage is sticky, so a job that must never finish is
simply one whose ``stages`` end with a running stage (e.g. ``["queued", "running"]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One remote job.

    Stage clock, chosen by ``config``:
    - ``polls_per_stage > 0``: observation n (1-based) returns ``stages[(n - 1) // polls_per_stage]``, so with 1
      the first observe returns ``stages[0]``, the second ``stages[1]``, and so on.
    - otherwise: ``stages[int(elapsed / stage_seconds)]`` since ``created_at`` (``stage_seconds <= 0``: last stage).
    """

    job_id: str
    stages: list[str]
    scenario: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)
    observations: int = 0

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a job needs at least one stage")

    def observe(self, config: dict[str, Any]) -> str:
        """Count one status poll and return the stage it sees."""
        self.observations += 1
        return self.peek(config)

    def peek(self, config: dict[str, Any]) -> str:
        """The current stage (as last observed in poll mode) without counting a poll."""
        return self.stages[min(self._index(config), len(self.stages) - 1)]

    def _index(self, config: dict[str, Any]) -> int:
        polls = int(config.get("polls_per_stage", 0) or 0)
        if polls > 0:
            return max(self.observations - 1, 0) // polls
        seconds = float(config.get("stage_seconds", 0) or 0)
        if seconds <= 0:
            return len(self.stages) - 1
        return int((time.time() - self.created_at) / seconds)

    def describe(self, config: dict[str, Any]) -> dict[str, Any]:
        """A JSON-friendly view for the debugging endpoint."""
        return {
            "job_id": self.job_id,
            "stages": self.stages,
            "stage": self.peek(config),
            "observations": self.observations,
            "created_at": self.created_at,
            "scenario": self.scenario,
            "data": self.data,
        }

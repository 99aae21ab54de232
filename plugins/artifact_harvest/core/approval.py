"""Paid work can wait for a person: an optional approval step (Airflow's HITL ``ApprovalOperator``) before a
pipeline's submit task, showing what will be sent and what it uses (docs/approval.md).

Provider-agnostic: a provider gives a ``Summarize`` function (the run's params → ``Summary`` lines); this module
makes the ``require_approval`` Param, the review panel's text and the ``approve`` task, and wires it before the
submit. The DAG's structure is the same for every run: with ``require_approval`` off the ``approve`` task skips
itself without waiting and the submit runs (trigger rule ``none_failed``); Reject skips the submit and, through
their trigger rules, everything after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator, Context, Param, TriggerRule
from airflow.sdk.exceptions import AirflowSkipException

from artifact_harvest.core.params import as_bool

#: the trigger form's section holding ``require_approval``
APPROVAL_SECTION = "Approval"
APPROVE_TASK_ID = "approve"
PARAM = "require_approval"


@dataclass(frozen=True)
class Summary:
    """What a submit sends (``sent``) and what it uses of a paid quota or balance (``uses``), a line each."""

    sent: Sequence[str]
    uses: Sequence[str]


#: the run's params → its ``Summary``; may raise ``InvalidParameterError`` (the run fails, nothing is sent)
Summarize = Callable[[Mapping[str, Any]], Summary]


def approval_param() -> Param:
    """``require_approval``: off by default, in the form's *Approval* section."""
    return Param(False, type="boolean", title="Require approval", section=APPROVAL_SECTION,
                 description="Wait for a person to approve before anything is sent: the run shows what will be "
                 "sent and what it uses under Required Actions (Approve or Reject). Reject sends nothing and "
                 "skips the rest of the run (docs/approval.md).")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def quote(text: object, limit: int = 120) -> str:
    """A one-line excerpt of user text for the review panel: at most ``limit`` characters, Markdown escaped."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", line)


def approval_body(summary: Summary) -> str:
    """The review panel's Markdown: the summary's lines as two lists, and what each answer does."""
    sent = "\n".join(f"- {line}" for line in summary.sent)
    uses = "\n".join(f"- {line}" for line in summary.uses)
    return (f"**What will be sent**\n\n{sent}\n\n**What it uses**\n\n{uses}\n\n"
            "**Approve** sends it. **Reject** sends nothing: the submit and every later task are skipped.")


class PaidWorkApprovalOperator(ApprovalOperator):
    """Waits for Approve or Reject when ``required``, showing ``summarize(params)``; skips itself otherwise.

    :param summarize: the run's params → ``Summary`` (runs on the worker, when the task starts).
    :param required: templated flag, by default the run's ``require_approval`` Param.
    :param subject: the request's headline (templated).
    """

    template_fields = (*ApprovalOperator.template_fields, "required")

    def __init__(self, *, summarize: Summarize, subject: str, required: bool | str = "{{ params.require_approval }}",
                 **kwargs: Any) -> None:
        super().__init__(subject=subject, **kwargs)
        self.summarize = summarize
        self.required = required

    def execute(self, context: Context) -> Any:
        if not as_bool(self.required, PARAM):
            raise AirflowSkipException("require_approval is off: the submit runs without waiting")
        self.body = approval_body(self.summarize(context["params"]))
        self.log.info("waiting for Approve or Reject under Required Actions:\n%s", self.body)
        return super().execute(context)


def approve_before(submit: BaseOperator, summarize: Summarize, subject: str) -> PaidWorkApprovalOperator:
    """Inside the DAG block: ``approve >> submit``, the submit running after an approval or a skipped approval.

    The submit must have no other upstream task (its trigger rule becomes ``none_failed``).
    """
    if submit.upstream_task_ids:
        raise ValueError(f"{submit.task_id} has upstream tasks; the approval goes before the first paid task")
    approve = PaidWorkApprovalOperator(task_id=APPROVE_TASK_ID, summarize=summarize, subject=subject)
    submit.trigger_rule = TriggerRule.NONE_FAILED
    approve >> submit
    return approve

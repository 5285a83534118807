"""A workflow that tries calls the sandbox restricts, for the runner's tests: its own module, so the sandbox imports nothing else."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError


@workflow.defn
class SandboxProbe:
    """For each call, "refused" when the sandbox stops it in this module's own code, "allowed" when nothing does."""

    @workflow.run
    async def run(self) -> dict[str, str]:
        answers = {}
        for call, attempt in (("read the wall clock", datetime.now), ("open a file", lambda: open("/dev/null"))):
            try:
                attempt()
                answers[call] = "allowed"
            except RestrictedWorkflowAccessError:
                answers[call] = "refused"
        return answers

"""Two versions of one small workflow for the changes tests: as recorded before a generation, and as today."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.changes import ALERTS_PATCH, CSC_NOTIFICATION_PATCH, patched

LATER_CHANGE = "a-change-after-the-generation"


@workflow.defn(name="ChangesTaken")
class ChangesTakenBefore:
    """Recorded when escalation alerts were the newest change: it asked for that change alone."""

    @workflow.run
    async def run(self) -> list[str]:
        taken = []
        if workflow.patched(ALERTS_PATCH):
            taken.append(ALERTS_PATCH)
            await workflow.sleep(timedelta(milliseconds=1))
        return taken


@workflow.defn(name="ChangesTaken")
class ChangesTakenToday:
    """Today's code: each change a step (a timer) that a run without it never had."""

    @workflow.run
    async def run(self) -> list[str]:
        taken = []
        for change, milliseconds in ((ALERTS_PATCH, 1), (CSC_NOTIFICATION_PATCH, 2), (LATER_CHANGE, 3)):
            if patched(change):
                taken.append(change)
                await workflow.sleep(timedelta(milliseconds=milliseconds))
        return taken

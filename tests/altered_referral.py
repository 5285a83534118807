"""A deliberately altered ReferralWorkflow for the negative replay test: its own module, so the sandbox imports nothing else."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.models import ReferralState, StartReferral
    from workflows.referral import ReferralWorkflow


@workflow.defn(name="ReferralWorkflow")
class ReferralWorkflowWithAnExtraTimer(ReferralWorkflow):
    """The kind of change that breaks running referrals: a new step before anything else, without a patch."""

    @workflow.init
    def __init__(self, start: StartReferral) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: StartReferral) -> ReferralState:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(start)

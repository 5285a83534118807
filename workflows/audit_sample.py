"""MonthlySampleWorkflow: on the first working day of each month, draw the quality-assurance sample as a worklist.

A Temporal Schedule starts it at 07:00 Europe/London on each of the first seven days of the
month; the run that falls on the first working day (weekends and bank holidays skipped)
draws the sample, the others end at once. Bank holidays arrive in the input.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditRecords
    from workflows.audit_models import MonthlySampleResult, MonthlySampleStart, SampleRequest
    from workflows.calendar import first_working_day, local_date

SAMPLE_TIMEOUT = timedelta(minutes=5)


@workflow.defn
class MonthlySampleWorkflow:
    @workflow.run
    async def run(self, start: MonthlySampleStart) -> MonthlySampleResult:
        today = local_date(workflow.now(), start.timezone)
        first = first_working_day(today.year, today.month, frozenset(start.bank_holidays))
        if today != first:
            return MonthlySampleResult(
                drawn=False, reason=f"{today.isoformat()} is not the month's first working day ({first.isoformat()})"
            )
        worklist = await workflow.execute_activity_method(
            AuditRecords.draw_monthly_sample,
            SampleRequest(month=f"{today:%Y-%m}", seed=start.seed, quotas=start.quotas, drawn_by="schedule"),
            start_to_close_timeout=SAMPLE_TIMEOUT,
        )
        return MonthlySampleResult(drawn=True, worklist=worklist)


if __name__ == "__main__":
    raise SystemExit("MonthlySampleWorkflow runs inside a worker: start one with `python worker.py`")

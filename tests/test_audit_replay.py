"""The recorded histories of every lifecycle path replay against the current workflow code, and a breaking change is caught."""

from __future__ import annotations

import shutil
import pytest
from temporalio import workflow
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from typer.testing import CliRunner

from cli.audit import audit_app
from audit.history import (
    ExportIntegrityError,
    ReferralHistories,
    decode_case,
    exported_histories,
    load_export,
    load_exports,
    write_export,
)
from audit.replay import ReplayStatus, build_replayer, replay_histories, replay_in_process
from tests.altered_referral import ReferralWorkflowWithAnExtraTimer
from tests.audit_helpers import GENERATIONS, HISTORIES, HISTORIES_CONVERTER, HISTORIES_SETTINGS, KEYRING, recorded
from tests.helpers import deciding_workflows
from tests.histories.record import FLOWS, KINDS
from worker import WORKFLOWS
from workflows.action import AgreedActionWorkflow
from workflows.facts import StageChanged, contents
from workflows.models import Stage
from workflows.missing import MissingEpisodeWorkflow


def all_histories():
    """Every history of the lifecycle generations, whatever its type: a referral's, a missing episode's, an agreed action's
    (the daily triage's, the trigger plans' and the panel sittings' are replayed by their own test)."""
    return [h for generation in GENERATIONS for h in exported_histories(generation)]


def test_every_lifecycle_path_is_recorded_in_the_latest_generation():
    for generation in GENERATIONS:
        folders = {p.name for p in generation.iterdir() if (p / "manifest.json").exists()}
        assert folders <= set(FLOWS), generation.name
    assert {p.name for p in GENERATIONS[-1].iterdir()} == set(FLOWS)
    types = {h.events[0].workflow_execution_started_event_attributes.workflow_type.name for h in all_histories()}
    assert types == {"ReferralWorkflow", "AgreedActionWorkflow", "MissingEpisodeWorkflow"}


async def test_the_latest_generation_enters_every_stage():
    """A new stage needs a recorded generation whose flows reach it: the replay gate runs only code a history reached.

    Seen failing with the generation's three paths to a conference left out.
    """
    entered = set()
    for referral in load_exports(GENERATIONS[-1]):
        decoded = await decode_case(referral, HISTORIES_CONVERTER)
        entered |= {change.to_stage for _, change in contents(decoded.facts, StageChanged)}
    assert set(Stage) - entered == set(), f"record a generation whose flows reach them: {GENERATIONS[-1].name}"


def test_every_workflow_that_takes_decisions_has_recorded_histories():
    # Seen failing with the triage's recorded generation moved away.
    recorded_types = {h.events[0].workflow_execution_started_event_attributes.workflow_type.name
                      for h in exported_histories(HISTORIES)}
    assert {w.__name__ for w in deciding_workflows()} - recorded_types == set()


async def test_recorded_histories_replay_with_the_workers_sandboxed_replayer():
    # The plain SDK check, with the worker's own configuration (full sandbox): what CI relies on.
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=HISTORIES_CONVERTER)
    for history in all_histories():
        await replayer.replay_workflow(history)


@pytest.mark.parametrize(("kind", "types"), [
    ("--triage", {"DailyTriageWorkflow"}),
    # The plans, their fold-in actions, the missing episodes that read them (the patched paths) and the referrals a CSE
    # episode linked.
    ("--plans", {"TriggerPlanWorkflow", "AgreedActionWorkflow", "MissingEpisodeWorkflow", "ReferralWorkflow"}),
    ("--panels", {"PanelSittingWorkflow", "AgreedActionWorkflow"}),
])
async def test_recorded_histories_of_each_other_workflow_replay_and_cover_its_paths(kind, types):
    """A daily triage's, a trigger plan's and a panel sitting's recorded paths (with their agreed actions) replay."""
    meetings = KINDS[kind]
    generations = sorted(p for p in meetings.folder.iterdir() if p.is_dir())
    assert {p.name for p in generations[-1].iterdir()} == set(meetings.flows)
    histories = exported_histories(meetings.folder)
    assert {h.events[0].workflow_execution_started_event_attributes.workflow_type.name for h in histories} == types
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=HISTORIES_CONVERTER)
    for history in histories:
        await replayer.replay_workflow(history)


async def test_parallel_replay_reports_every_recorded_history_ok():
    histories = all_histories()
    report = await replay_histories(histories, HISTORIES_SETTINGS, workers=2)
    assert report.passed, [h for h in report.histories if h.status is not ReplayStatus.OK]
    assert [h.workflow_id for h in report.histories] == [h.workflow_id for h in histories]
    assert report.counts[ReplayStatus.OK] == len(histories)


async def test_a_change_that_breaks_determinism_is_caught():
    referral = recorded()[0].referral
    replayer = Replayer(workflows=[ReferralWorkflowWithAnExtraTimer, AgreedActionWorkflow], data_converter=HISTORIES_CONVERTER)
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(referral)

    altered = build_replayer(
        HISTORIES_SETTINGS, workflows=[ReferralWorkflowWithAnExtraTimer, AgreedActionWorkflow, MissingEpisodeWorkflow]
    )
    outcomes = await replay_in_process(altered, all_histories())
    by_type = {o.workflow_type: set() for o in outcomes}
    for o in outcomes:
        by_type[o.workflow_type].add(o.status)
    assert by_type == {
        "ReferralWorkflow": {ReplayStatus.NON_DETERMINISTIC},
        "AgreedActionWorkflow": {ReplayStatus.OK},
        "MissingEpisodeWorkflow": {ReplayStatus.OK},
    }
    first = next(o for o in outcomes if o.workflow_type == "ReferralWorkflow")
    # The timer the altered code wants comes where the history holds the first fact being recorded.
    assert first.first_mismatch_event is not None
    assert first.first_mismatch_event_type == "ACTIVITY_TASK_SCHEDULED"
    assert "Nondeterminism" in first.detail


def test_an_altered_export_is_refused(tmp_path):
    folder = tmp_path / "closed_early"
    shutil.copytree(GENERATIONS[0] / "closed_early", folder)
    history_file = next(p for p in folder.glob("REF-*.json"))
    history_file.write_text(history_file.read_text().replace('"eventId": "3"', '"eventId": "33"', 1))
    with pytest.raises(ExportIntegrityError, match=history_file.name):
        load_export(folder)


def test_the_replay_command_exits_non_zero_when_a_history_is_unexplained(tmp_path, monkeypatch, postgres_dsn, pool):
    monkeypatch.setenv("ENCRYPTION_KEYS", KEYRING.to_json())
    # Reads are recorded in the access log (`pool`: the test database, migrated) under the named auditor.
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("REFERRALS_AUDITOR_ID", "AUD-4001")
    runner = CliRunner()
    ok = runner.invoke(audit_app, ["replay", "--from-dir", str(GENERATIONS[-1] / "section_47_conference_attended"), "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "non_deterministic" in ok.output and "ok" in ok.output
    # In the SDK's full sandbox too (each workflow module re-imported for the history).
    sandboxed = runner.invoke(audit_app, ["replay", "--from-dir", str(GENERATIONS[-1] / "section_47_conference_attended"),
                                          "--workers", "1", "--sandbox"])
    assert sandboxed.exit_code == 0, sandboxed.output

    # A history of a workflow type the code no longer has cannot be explained.
    retired = History()
    retired.CopyFrom(History(events=recorded()[0].referral.events))
    retired.events[0].workflow_execution_started_event_attributes.workflow_type.name = "RetiredReferralWorkflow"
    write_export(tmp_path / "retired", [ReferralHistories(WorkflowHistory("REF-RETIRED", retired.events))])
    failed = runner.invoke(audit_app, ["replay", "--from-dir", str(tmp_path / "retired"), "--workers", "1", "--json"])
    assert failed.exit_code == 1, failed.output
    assert '"status": "failed"' in failed.output

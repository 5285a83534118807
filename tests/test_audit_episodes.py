"""The audit over missing episodes: grouped with their actions, decoded, read as a timeline through the facts registry,
reconciled with their read-model rows, exported and replayed, on the recorded histories and on a real dev server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from activities.audit import AuditRecords
from audit.as_of import episode_as_of, episode_from_facts
from audit.history import (
    DecodedEpisode,
    case_query,
    decode_case,
    export_histories,
    fetch_referrals,
    list_referrals,
    load_export,
)
from audit.reconcile import Problem, reconcile
from audit.replay import replay_histories
from audit.timeline import build_episode_timeline
from starter.synthetic import CSC_PARTNER, OFFICER, SERGEANT, found_report
from tests.audit_helpers import GENERATIONS, HISTORIES_CONVERTER, recorded
from tests.helpers import eventually, start_episode
from worker import build_worker
from workflows.action import AgreedActionWorkflow
from workflows.facts import FACTS, FactKind
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import (
    EpisodePhase,
    EpisodeReview,
    InterviewOutcome,
    ReturnHomeInterview,
    TracingActivity,
    TracingRecord,
)
from workflows.models import ActionCompletion, MissingGrade

RECORDED_EPISODE = GENERATIONS[-1] / "missing_episode_closed"


async def test_a_recorded_episode_groups_with_its_actions_and_reads_as_a_timeline_through_the_registry():
    (episode,) = load_export(RECORDED_EPISODE)
    assert episode.is_episode and episode.reference.startswith("MIS-")
    assert [h.workflow_id for h in episode.actions] == [f"{episode.reference}.A1", f"{episode.reference}.A2"]
    decoded = await decode_case(episode, HISTORIES_CONVERTER)
    assert isinstance(decoded, DecodedEpisode) and decoded.status == "completed"
    assert decoded.result is not None and decoded.result.phase is EpisodePhase.CLOSED

    timeline = build_episode_timeline(decoded)
    kinds = [d.kind for d in timeline.decisions]
    assert kinds[0] is FactKind.MISSING_REPORTED
    assert {FactKind.EPISODE_REVIEWED, FactKind.CHILD_FOUND, FactKind.INTERVIEW_RECORDED} <= set(kinds)
    for decision in timeline.decisions:
        assert decision.label == FACTS[decision.kind].label
    # Summaries only: no free text (the review's notes, the interview's reasons) reaches the timeline.
    assert "Synthetic" not in timeline.model_dump_json()
    (review,) = timeline.reviews
    assert review.met is True
    # The interview's outcome came after its due time: the late interview the flow escalated.
    assert timeline.interview is not None and timeline.interview.met is False
    assert [a.action_id for a in timeline.actions] == decoded.action_ids
    assert all(a.completed_by == CSC_PARTNER.id for a in timeline.actions)
    assert [e.escalation_id.rpartition(".")[0] for e in timeline.escalations] == [f"{episode.reference}.A2"]
    assert timeline.final_grade is MissingGrade.MEDIUM and timeline.closed_at == timeline.ends_at


async def test_the_state_folded_from_an_episodes_facts_is_the_workflows_own_final_state():
    episodes = [case for case in recorded() if case.is_episode]
    assert episodes
    for case in episodes:
        decoded = await decode_case(case, HISTORIES_CONVERTER)
        assert decoded.result is not None, case.reference
        assert episode_from_facts(decoded) == decoded.result, case.reference


async def test_an_episode_on_the_server_reconciles_exports_and_replays_and_a_changed_row_is_found(
    dev_env, pool, settings, task_queue, sla_policy, tmp_path
):
    started = datetime.now(timezone.utc) - timedelta(minutes=1)
    async with build_worker(dev_env.client, pool, settings, task_queue=task_queue):
        _, handle = await start_episode(dev_env.client, task_queue, sla_policy, seed="audited-episode")
        # The child's episodes counted from the read model first, so each state below includes the count.
        await eventually(lambda: handle.query(MissingEpisodeWorkflow.state), lambda s: s.episodes_in_window == 1)
        review = EpisodeReview(actor=SERGEANT, tracing_done="Synthetic: home searched.", next_steps="Synthetic: friends.")
        seen = []  # (a moment just after a decision, the state the workflow answered with)
        state = await handle.execute_update(MissingEpisodeWorkflow.review, review)
        seen.append((datetime.now(timezone.utc), state))
        tracing = TracingRecord(actor=OFFICER, activity=TracingActivity.CCTV_REVIEWED)
        state = await handle.execute_update(MissingEpisodeWorkflow.record_tracing, tracing)
        seen.append((datetime.now(timezone.utc), state))
        state = await handle.execute_update(MissingEpisodeWorkflow.found, found_report(datetime.now(timezone.utc)))
        await dev_env.client.get_workflow_handle(state.interview_action_id).execute_update(
            AgreedActionWorkflow.complete, ActionCompletion(actor=CSC_PARTNER, note="Synthetic: interview held.")
        )
        outcome = ReturnHomeInterview(actor=CSC_PARTNER, outcome=InterviewOutcome.DONE, held_at=datetime.now(timezone.utc))
        await handle.execute_update(MissingEpisodeWorkflow.record_interview, outcome)
        closed = await handle.result()
    assert closed.phase is EpisodePhase.CLOSED
    episode, interview = handle.id, closed.interview_action_id

    # Listed among the cases of its time, on the server and in the read model.
    query = case_query(since=started, query=f"WorkflowId = '{episode}'")
    runs = await eventually(lambda: list_referrals(dev_env.client, query), lambda found: len(found) == 1)
    assert episode in await AuditRecords(pool).references_submitted(started, None)

    # As of each moment the test looked, the facts tell what the workflow's state said then.
    for moment, state in seen:
        assert await episode_as_of(dev_env.client, episode, moment) == state

    report = await reconcile(dev_env.client, pool, references=[episode])
    assert report.passed, report.mismatches
    assert report.facts >= 8 and report.rows >= 8

    manifest = await export_histories(dev_env.client, tmp_path, query=query)
    assert [(f.workflow_id, f.workflow_type) for f in manifest.files] == [
        (episode, "MissingEpisodeWorkflow"), (interview, "AgreedActionWorkflow")
    ]
    (exported,) = load_export(tmp_path)
    assert exported.is_episode and [h.workflow_id for h in exported.actions] == [interview]
    timeline = build_episode_timeline(await decode_case(exported, dev_env.client.data_converter))
    assert timeline.interview is not None and timeline.interview.met is True
    assert [r.met for r in timeline.reviews] == [True]

    histories = [h for case in await fetch_referrals(dev_env.client, runs) for h in case.all()]
    replayed = await replay_histories(histories, settings, workers=1)
    assert replayed.passed and [h.workflow_id for h in replayed.histories] == [episode, interview]

    # A grade changed behind the workflow's back and a review row deleted: both reported, by table and key.
    (review_seq,) = [r["seq"] for r in await pool.fetch("SELECT seq FROM missing_reviews WHERE episode_id = $1", episode)]
    await pool.execute("UPDATE missing_episodes SET grade = 'low' WHERE episode_id = $1", episode)
    await pool.execute("DELETE FROM missing_reviews WHERE episode_id = $1", episode)
    tampered = await reconcile(dev_env.client, pool, references=[episode])
    assert {(m.problem, m.table, m.key, tuple(m.fields)) for m in tampered.mismatches} == {
        (Problem.DIFFERS, "missing_episodes", episode, ("grade",)),
        (Problem.MISSING_IN_DATABASE, "missing_reviews", f"{episode}#{review_seq}", ()),
    }

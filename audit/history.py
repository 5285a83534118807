"""Case histories as auditors read them: fetched from Temporal or an export folder, and decoded into facts.

A case is a referral (`REF-` ID), a missing episode (`MIS-` ID), a child's trigger plan (`PLAN-`
ID), a day's triage (`TRIAGE-` date) or a panel's sitting (`PANEL-` code and date); its agreed actions are its child workflows (`REF-...A1`, `MIS-...A1`). A case's facts are the recording activities' inputs of its
history and of its agreed actions' histories (each a RecordedEvent; a batch written as a local
activity is read from its marker, whose result echoes the facts); its decisions are the
updates the workflows accepted. Payloads are opened with the system's data converter, so
sealed histories need the keyring.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from workflows.facts import FactBatch, RecordedBatch, RecordedEvent
from workflows.missing_models import EpisodeState, StartMissingEpisode
from workflows.panel_models import SittingStart, SittingState
from workflows.triage_models import TriageList, TriageListQuery, TriageStart, TriageState
from workflows.models import (
    Actor,
    ReferralState,
    ScreeningView,
    SlaPolicy,
    StartReferral,
    action_number,
)

REFERRAL_WORKFLOW = "ReferralWorkflow"
EPISODE_WORKFLOW = "MissingEpisodeWorkflow"
TRIAGE_WORKFLOW = "DailyTriageWorkflow"
PLAN_WORKFLOW = "TriggerPlanWorkflow"
PANEL_WORKFLOW = "PanelSittingWorkflow"
# The workflow types audited as cases, each with the agreed actions it started.
CASE_WORKFLOWS = (REFERRAL_WORKFLOW, EPISODE_WORKFLOW, TRIAGE_WORKFLOW, PLAN_WORKFLOW, PANEL_WORKFLOW)
ACTION_WORKFLOW = "AgreedActionWorkflow"
RECORD_ACTIVITY = "record_event"
# Since batched recording: every fact waiting at once, in one activity.
RECORD_BATCH_ACTIVITY = "record_events"
# Since in-app alerts are written with their escalations: the batch and its alerts, in one activity.
RECORD_FACTS_ACTIVITY = "record_facts"
PRIOR_REFERRALS_ACTIVITY = "find_prior_referrals"
POLICY_ACTIVITY = "load_sla_policy"
EPISODE_COUNT_ACTIVITY = "count_missing_episodes"
TRIAGE_LIST_ACTIVITY = "triage_list"
# A local activity leaves one marker, written when its workflow task completes: its result under "result",
# what it was (activity type, attempt, when it completed) under "data", a failure in the marker's own field.
LOCAL_ACTIVITY_MARKER = "core_local_activity"
MANIFEST = "manifest.json"
FETCH_CONCURRENCY = 8


# --- reading a history's events ------------------------------------------------------------


def event_time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=timezone.utc)


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def parent_workflow_id(history: WorkflowHistory) -> str | None:
    parent = history.events[0].workflow_execution_started_event_attributes.parent_workflow_execution
    return parent.workflow_id or None


def child_executions(history: WorkflowHistory) -> list[tuple[str, str]]:
    """The (workflow ID, run ID) of every child the history started: a case's agreed actions."""
    return [
        (e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id,
         e.child_workflow_execution_started_event_attributes.workflow_execution.run_id)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]


@dataclass(frozen=True)
class ReferralHistories:
    """One case's history (a referral's or a missing episode's) with the histories of its agreed actions."""

    referral: WorkflowHistory
    actions: tuple[WorkflowHistory, ...] = ()

    @property
    def reference(self) -> str:
        return self.referral.workflow_id

    @property
    def workflow_type(self) -> str:
        return workflow_type(self.referral)

    @property
    def is_episode(self) -> bool:
        return self.workflow_type == EPISODE_WORKFLOW

    def all(self) -> list[WorkflowHistory]:
        return [self.referral, *self.actions]


def group_histories(histories: Iterable[WorkflowHistory]) -> list[ReferralHistories]:
    """Gather loose histories into cases: each action joins the referral or missing episode that started it."""
    histories = list(histories)
    children: dict[str, list[WorkflowHistory]] = {}
    for history in histories:
        parent = parent_workflow_id(history)
        if parent is not None:
            children.setdefault(parent, []).append(history)
    return [
        ReferralHistories(h, tuple(sorted(children.get(h.workflow_id, []), key=_action_order)))
        for h in histories
        if workflow_type(h) in CASE_WORKFLOWS
    ]


def _action_order(history: WorkflowHistory) -> tuple[int, str]:
    return (action_number(history.workflow_id), history.workflow_id)


# --- from the server -----------------------------------------------------------------------


async def fetch_referral(client: Client, reference: str, run_id: str | None = None) -> ReferralHistories:
    referral = await client.get_workflow_handle(reference, run_id=run_id).fetch_history()
    actions = [
        await client.get_workflow_handle(child_id, run_id=child_run).fetch_history()
        for child_id, child_run in child_executions(referral)
    ]
    return ReferralHistories(referral, tuple(actions))


async def fetch_referrals(
    client: Client, runs: Sequence[tuple[str, str | None]], concurrency: int = FETCH_CONCURRENCY
) -> list[ReferralHistories]:
    """Several cases' histories, fetched a few at a time; in the order asked."""
    limit = asyncio.Semaphore(concurrency)

    async def one(reference: str, run_id: str | None) -> ReferralHistories:
        async with limit:
            return await fetch_referral(client, reference, run_id)

    return list(await asyncio.gather(*(one(reference, run_id) for reference, run_id in runs)))


def case_query(since: datetime | None = None, until: datetime | None = None, query: str | None = None) -> str:
    """A visibility query for the cases (referrals and missing episodes) started in [since, until), narrowed by `query`."""
    clauses = ["(" + " OR ".join(f"WorkflowType = '{case}'" for case in CASE_WORKFLOWS) + ")"]
    if since is not None:
        clauses.append(f"StartTime >= '{since.astimezone(timezone.utc).isoformat()}'")
    if until is not None:
        clauses.append(f"StartTime < '{until.astimezone(timezone.utc).isoformat()}'")
    if query:
        clauses.append(f"({query})")
    return " AND ".join(clauses)


async def list_referrals(client: Client, query: str) -> list[tuple[str, str]]:
    """(reference, run ID) of every case run matching a visibility query, oldest first."""
    found = [(w.start_time, w.id, w.run_id) async for w in client.list_workflows(query)]
    return [(reference, run_id) for _, reference, run_id in sorted(found)]


# --- export folders ------------------------------------------------------------------------


class ExportedHistory(BaseModel):
    file: str
    workflow_id: str
    run_id: str
    workflow_type: str
    parent_workflow_id: str | None = None
    events: int
    sha256: str


class ExportManifest(BaseModel):
    """What an export folder holds: each file's identity and SHA-256, to prove it unchanged."""

    exported_at: datetime
    query: str | None = None
    files: list[ExportedHistory]


class ExportIntegrityError(ValueError):
    """An export folder's files do not match its manifest."""


def file_name(workflow_id: str) -> str:
    return f"{workflow_id}.json"


def write_export(folder: Path, referrals: Sequence[ReferralHistories], query: str | None = None) -> ExportManifest:
    """Write each history in Temporal's JSON history format, and the manifest beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for history in (h for referral in referrals for h in referral.all()):
        data = history.to_json().encode()
        name = file_name(history.workflow_id)
        (folder / name).write_bytes(data)
        entries.append(
            ExportedHistory(
                file=name,
                workflow_id=history.workflow_id,
                run_id=history.run_id,
                workflow_type=workflow_type(history),
                parent_workflow_id=parent_workflow_id(history),
                events=len(history.events),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    manifest = ExportManifest(exported_at=datetime.now(timezone.utc), query=query, files=entries)
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


async def export_histories(
    client: Client, folder: Path, references: Sequence[str] | None = None, query: str | None = None
) -> ExportManifest:
    """Export the named cases, or every case matching a visibility query, with their actions."""
    if references is None:
        if query is None:
            raise ValueError("give references or a query")
        runs = await list_referrals(client, query)
    else:
        runs = [(reference, None) for reference in references]
    return write_export(folder, await fetch_referrals(client, runs), query)


def load_export_histories(folder: Path) -> list[WorkflowHistory]:
    """Every history of one export folder, after checking each file against the manifest."""
    manifest = ExportManifest.model_validate_json((folder / MANIFEST).read_text())
    histories, altered = [], []
    for entry in manifest.files:
        data = (folder / entry.file).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            altered.append(entry.file)
            continue
        histories.append(WorkflowHistory.from_json(entry.workflow_id, data.decode()))
    if altered:
        raise ExportIntegrityError(f"{folder}: SHA-256 differs from the manifest for {', '.join(altered)}")
    return histories


def load_export(folder: Path) -> list[ReferralHistories]:
    """The cases of one export folder, each with its agreed actions."""
    return group_histories(load_export_histories(folder))


def exported_histories(root: Path) -> list[WorkflowHistory]:
    """Every history of every export folder under `root` (itself included), whatever its workflow type."""
    return [h for manifest in sorted(root.rglob(MANIFEST)) for h in load_export_histories(manifest.parent)]


def load_exports(root: Path) -> list[ReferralHistories]:
    """Every export folder under `root` (itself included), in path order."""
    return [r for manifest in sorted(root.rglob(MANIFEST)) for r in load_export(manifest.parent)]


# --- decoding --------------------------------------------------------------------------------


async def _decode(converter: DataConverter, payloads: Payloads, type_hint: type | None = None) -> Any:
    values = await converter.decode(payloads.payloads, [type_hint] if type_hint else None)
    return values[0] if values else None


@dataclass(frozen=True)
class AcceptedDecision:
    """A human decision the workflow accepted (an update that passed its validator)."""

    workflow_id: str
    update: str
    update_id: str
    accepted_at: datetime
    handled_at: datetime  # the workflow time of the task that ran the handler: its facts' `at`
    actor: Actor


@dataclass(kw_only=True)
class DecodedCase:
    """What an audit needs from any case's histories, decoded once: its facts, decisions and ending."""

    reference: str
    run_id: str
    facts: list[RecordedEvent]
    decisions: list[AcceptedDecision]
    status: str
    ended_at: datetime | None
    events: int = 0
    action_ids: list[str] = field(default_factory=list)
    unconfirmed: set[tuple[str, int]] = field(default_factory=set)  # facts whose write has not completed yet

    def facts_until(self, moment: datetime) -> list[RecordedEvent]:
        return [f for f in self.facts if f.at <= moment]


@dataclass(kw_only=True)
class DecodedReferral(DecodedCase):
    """A referral's histories decoded: its start, SLA policy, screening views and result besides."""

    start: StartReferral
    policy: SlaPolicy
    screening_views: list[tuple[datetime, ScreeningView]]
    result: ReferralState | None


@dataclass(kw_only=True)
class DecodedEpisode(DecodedCase):
    """A missing episode's histories decoded: its start (the report) and result besides."""

    start: StartMissingEpisode
    result: EpisodeState | None
    # The child's episodes in the repeat-missing window, as the read model answered (once, after the report).
    episode_counts: list[tuple[datetime, int]] = field(default_factory=list)


@dataclass
class DecodedTriage(DecodedCase):
    """A day's triage decoded: its day and policy, the list the read model gave it, and its result."""

    start: TriageStart
    result: TriageState | None
    listing: TriageList | None = None
    listing_query: TriageListQuery | None = None


def local_activity_type(event: HistoryEvent) -> str | None:
    """The activity a local activity's marker is of; None for any other event."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    meta = marker.details["data"].payloads
    return json.loads(meta[0].data).get("activity_type") if meta else None


def local_result(event: HistoryEvent, activity: str) -> Payloads | None:
    """The result in `event` when it is the marker of `activity` run as a local activity that completed (a failed
    one holds no "result"); None otherwise."""
    if local_activity_type(event) != activity:
        return None
    marker = event.marker_recorded_event_attributes
    return None if marker.HasField("failure") or "result" not in marker.details else marker.details["result"]


def _local_results(history: WorkflowHistory, activity: str) -> list[tuple[datetime, Payloads]]:
    """Each result of `activity` run as a local activity that completed."""
    return [(event_time(e), result) for e in history.events if (result := local_result(e, activity)) is not None]


async def _activity_results(
    history: WorkflowHistory, converter: DataConverter, activity: str, type_hint: type
) -> list[tuple[datetime, Any]]:
    """Each result of `activity`, run as an activity or a local activity, with when the workflow had it."""
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    }
    remote = [
        (event_time(e), e.activity_task_completed_event_attributes.result)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]
    results = sorted(remote + _local_results(history, activity), key=lambda result: result[0])
    return [(at, await _decode(converter, payloads, type_hint)) for at, payloads in results]


async def _activity_inputs(
    history: WorkflowHistory, converter: DataConverter, activity: str, type_hint: type
) -> list[Any]:
    return [
        await _decode(converter, e.activity_task_scheduled_event_attributes.input, type_hint)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


async def recorded_facts(history: WorkflowHistory, converter: DataConverter) -> list[tuple[RecordedEvent, bool]]:
    """The facts one workflow recorded, in sequence order, each with whether its write is confirmed.

    A fact is in the history once its `record_event` (`record_events`, `record_facts`) activity is scheduled;
    the write is confirmed once that activity completed (until then the database may not have it yet). A
    referral's first batch whose start the activity refused (no valid proof) wrote nothing: none of its facts.
    A batch written as a local activity is in the history only once written: its marker, whose result echoes
    the facts (one that did not write leaves its batch to the `record_facts` activity after it).
    """
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id: e.activity_task_completed_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }
    facts: list[tuple[RecordedEvent, bool]] = []
    for e in history.events:
        if local_activity_type(e) == RECORD_FACTS_ACTIVITY:
            if (result := local_result(e, RECORD_FACTS_ACTIVITY)) is not None:
                answer = await _decode(converter, result, RecordedBatch)
                if answer.start_refusal is None:
                    facts += [(fact, True) for fact in answer.written or []]
            continue
        if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = e.activity_task_scheduled_event_attributes
        confirmed = e.event_id in completed
        if scheduled.activity_type.name == RECORD_ACTIVITY:
            facts.append((await _decode(converter, scheduled.input, RecordedEvent), confirmed))
        elif scheduled.activity_type.name == RECORD_BATCH_ACTIVITY:
            batch = await _decode(converter, scheduled.input, list[RecordedEvent])
            facts += [(fact, confirmed) for fact in batch]
        elif scheduled.activity_type.name == RECORD_FACTS_ACTIVITY:
            with_alerts = await _decode(converter, scheduled.input, FactBatch)
            if with_alerts.start_check is not None and confirmed:
                answer = await _decode(converter, completed[e.event_id].result, RecordedBatch)
                if answer.start_refusal is not None:
                    continue
            facts += [(fact, confirmed) for fact in with_alerts.events]
    return facts


async def accepted_decisions(history: WorkflowHistory, converter: DataConverter) -> list[AcceptedDecision]:
    decisions = []
    task_started = event_time(history.events[0])
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task_started = event_time(e)
        if e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            continue
        request = e.workflow_execution_update_accepted_event_attributes.accepted_request
        body = await _decode(converter, request.input.args)
        decisions.append(
            AcceptedDecision(
                workflow_id=history.workflow_id,
                update=request.input.name,
                update_id=request.meta.update_id,
                accepted_at=event_time(e),
                handled_at=task_started,
                actor=Actor.model_validate(body["actor"]),
            )
        )
    return decisions


_ENDINGS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


def _fact_order(reference: str):
    # Facts of different streams at the same instant: the referral's first (it agreed the action).
    return lambda f: (f.at, f.stream != reference, f.stream, f.seq)


async def _decode_case(case: ReferralHistories, converter: DataConverter) -> dict[str, Any]:
    """The fields every decoded case shares, from its own history and its agreed actions'."""
    history = case.referral
    last = history.events[-1]
    facts: list[RecordedEvent] = []
    unconfirmed: set[tuple[str, int]] = set()
    decisions: list[AcceptedDecision] = []
    for h in case.all():
        for fact, confirmed in await recorded_facts(h, converter):
            facts.append(fact)
            if not confirmed:
                unconfirmed.add((fact.stream, fact.seq))
        decisions += await accepted_decisions(h, converter)
    status = _ENDINGS.get(last.event_type, "running")
    return dict(
        reference=case.reference,
        run_id=history.run_id,
        facts=sorted(facts, key=_fact_order(case.reference)),
        decisions=sorted(decisions, key=lambda d: d.accepted_at),
        status=status,
        ended_at=event_time(last) if status != "running" else None,
        events=sum(len(h.events) for h in case.all()),
        action_ids=[h.workflow_id for h in case.actions],
        unconfirmed=unconfirmed,
    )


async def _start_and_result(history: WorkflowHistory, converter: DataConverter, start: type, result: type) -> tuple[Any, Any]:
    first, last = history.events[0], history.events[-1]
    started = await _decode(converter, first.workflow_execution_started_event_attributes.input, start)
    if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return started, None
    return started, await _decode(converter, last.workflow_execution_completed_event_attributes.result, result)


async def screening_views(history: WorkflowHistory, converter: DataConverter) -> list[tuple[datetime, ScreeningView]]:
    """What screening saw, when: each view read on its own, or with the facts of the decision that needed it."""
    alone = await _activity_results(history, converter, PRIOR_REFERRALS_ACTIVITY, ScreeningView)
    with_facts = [
        (at, batch.screening_view)
        for at, batch in await _activity_results(history, converter, RECORD_FACTS_ACTIVITY, RecordedBatch)
        if batch.screening_view is not None
    ]
    return sorted(alone + with_facts, key=lambda seen: seen[0])


async def decode_referral(referral: ReferralHistories, converter: DataConverter) -> DecodedReferral:
    history = referral.referral
    start, result = await _start_and_result(history, converter, StartReferral, ReferralState)
    policy = start.sla_policy
    if policy is None:
        loaded = await _activity_results(history, converter, POLICY_ACTIVITY, SlaPolicy)
        policy = loaded[0][1] if loaded else SlaPolicy()
    return DecodedReferral(
        **await _decode_case(referral, converter),
        start=start,
        policy=policy,
        screening_views=await screening_views(history, converter),
        result=result,
    )


async def decode_episode(episode: ReferralHistories, converter: DataConverter) -> DecodedEpisode:
    start, result = await _start_and_result(episode.referral, converter, StartMissingEpisode, EpisodeState)
    return DecodedEpisode(
        **await _decode_case(episode, converter),
        start=start,
        result=result,
        episode_counts=await _activity_results(episode.referral, converter, EPISODE_COUNT_ACTIVITY, int),
    )


async def decode_triage(triage: ReferralHistories, converter: DataConverter) -> DecodedTriage:
    start, result = await _start_and_result(triage.referral, converter, TriageStart, TriageState)
    listed = await _activity_results(triage.referral, converter, TRIAGE_LIST_ACTIVITY, TriageList)
    return DecodedTriage(
        **await _decode_case(triage, converter),
        start=start,
        result=result,
        listing=listed[0][1] if listed else None,
        listing_query=next(iter(await _activity_inputs(triage.referral, converter, TRIAGE_LIST_ACTIVITY, TriageListQuery)),
                           None),
    )


@dataclass(kw_only=True)
class DecodedSitting(DecodedCase):
    """A panel's sitting decoded: its start (the panel, the day, the policy) and result besides."""

    start: SittingStart
    result: SittingState | None


async def decode_sitting(sitting: ReferralHistories, converter: DataConverter) -> DecodedSitting:
    start, result = await _start_and_result(sitting.referral, converter, SittingStart, SittingState)
    return DecodedSitting(**await _decode_case(sitting, converter), start=start, result=result)


async def decode_facts(case: ReferralHistories, converter: DataConverter) -> DecodedCase:
    """A case read by its facts and decisions alone (a trigger plan's): reconciled, exported and replayed."""
    return DecodedCase(**await _decode_case(case, converter))


# Each case's decoder, by its workflow type.
DECODERS = {
    REFERRAL_WORKFLOW: decode_referral,
    EPISODE_WORKFLOW: decode_episode,
    TRIAGE_WORKFLOW: decode_triage,
    PLAN_WORKFLOW: decode_facts,
    PANEL_WORKFLOW: decode_sitting,
}


async def decode_case(case: ReferralHistories, converter: DataConverter) -> DecodedCase:
    """A case's histories decoded, by the case's workflow type."""
    return await DECODERS[case.workflow_type](case, converter)

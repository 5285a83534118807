"""Driving referrals in tests: start one, decide, and wait for what the workflow reports; each workflow type's decisions and their routes."""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import random
import re
from dataclasses import dataclass
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.service import RPCError
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from fastapi.routing import APIRoute
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

import starter
from api.app import ROUTERS
from auth.sessions import COOKIE
from starter.plans import TriggerPlans
from tests.conftest import PLAN_ID_SECRET
from starter.synthetic import CSC_PARTNER, OFFICER, SCREENER, synthetic_missing_report, synthetic_vist
from starter.workflow_client import WorkflowClient
from workflows.action import AgreedActionWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeState, MissingReport, RiskIndicator, StartMissingEpisode
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import StartTriggerPlan, TriggerPlan
from workflows.models import (
    ActionCompletion,
    Actor,
    MissingChild,
    ReferralState,
    SlaPolicy,
    StartReferral,
    VistSubmission,
    episode_id,
    referral_reference,
)
from workflows.referral import ReferralWorkflow
from worker import WORKFLOWS

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Browser:
    """A browser signed in on the dashboard: the cookie it sends, and the CSRF token its pages' forms carry."""

    headers: dict[str, str]
    csrf_token: str

    def form(self, **fields: str) -> dict[str, str]:
        """A form's fields as one of its pages posts them."""
        return fields | {"csrf_token": self.csrf_token}


async def sign_in(http: httpx.AsyncClient, token: str) -> Browser:
    """Sign in on the dashboard's form with a bearer token, as a person does; the session's cookie and CSRF token."""
    response = await http.post("/dashboard/login", data={"token": token, "next": "/dashboard/actions"})
    assert response.status_code == 303, response.text
    headers = {"Cookie": f"{COOKIE}={response.cookies[COOKIE]}"}
    http.cookies.clear()  # each test names the browser it sends as, by its headers
    page = await http.get("/dashboard/actions", headers=headers)
    return Browser(headers, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1))

# How long a refusal may take: it comes from the validator, before anything is written.
REFUSAL_WAIT = 15

# Referrals started by the current test; whatever is still open is terminated after it, so no
# workflow is left waiting on a task queue nobody polls (that would stop time skipping).
STARTED: list[WorkflowHandle] = []


def main_of(page: str) -> str:
    """A dashboard page's main content, as a browser draws it: what the page holds outside its title and header."""
    return page.split("<main>", 1)[1].split("</main>", 1)[0]


async def start_referral(
    client: Client,
    task_queue: str,
    sla_policy: SlaPolicy,
    submission: VistSubmission | None = None,
    seed: int | None = None,
) -> tuple[VistSubmission, WorkflowHandle]:
    if submission is None:
        submission = synthetic_vist(rng=seeded(seed))
    handle = await client.start_workflow(
        ReferralWorkflow.run,
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy),
        id=referral_reference(submission.form_id),
        task_queue=task_queue,
    )
    STARTED.append(handle)
    return submission, handle


async def csc_told(client: Client, screened: ReferralState) -> None:
    """The screener marks done the notification to children's social care a closing screening agreed: it then closes."""
    for action in screened.open_actions:
        await client.get_workflow_handle(action.action_id).execute_update(
            AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic: children's social care told."))


async def screened_and_told(client: Client, handle: WorkflowHandle, screening: object) -> ReferralState:
    """A closing screening, then children's social care told of it: the referral's state once it has closed."""
    await csc_told(client, await handle.execute_update(ReferralWorkflow.screen, screening))
    return await state_when(handle, lambda s: s.close_reason is not None)


def seeded(seed: object) -> random.Random:
    """A generator per test file and seed, so two files' "seed 90" never make the same form or report."""
    test_file = os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]
    return random.Random(f"{test_file}:{seed}")


async def start_episode(
    client: Client,
    task_queue: str,
    sla_policy: SlaPolicy,
    report: MissingReport | None = None,
    seed: object = None,
    reported_by: Actor = OFFICER,
) -> tuple[MissingReport, WorkflowHandle]:
    """A missing episode started straight from its report (registered to be terminated when the test ends),
    returned once its child's episodes are counted, their trigger plan read and (with a CSE concern) their referrals
    linked or the MASH told, so a test's state comparisons are not raced by any of these."""
    report = report or synthetic_missing_report(rng=seeded(seed))
    handle = await client.start_workflow(
        MissingEpisodeWorkflow.run,
        StartMissingEpisode(report=report, reported_by=reported_by, sla_policy=sla_policy),
        id=episode_id(report.report_id),
        task_queue=task_queue,
    )
    STARTED.append(handle)
    await eventually(lambda: handle.query(MissingEpisodeWorkflow.state), child_history_read)
    return report, handle


async def start_plan(
    client: Client,
    task_queue: str,
    sla_policy: SlaPolicy,
    child: MissingChild,
    plan: TriggerPlan,
    written_by: Actor = CSC_PARTNER,
) -> WorkflowHandle:
    """A child's trigger plan started straight (registered to be terminated when the test ends: a plan never ends)."""
    handle = await client.start_workflow(
        TriggerPlanWorkflow.run,
        StartTriggerPlan(child=child, plan=plan, written_by=written_by, sla_policy=sla_policy),
        id=TriggerPlans.workflow_id(child, PLAN_ID_SECRET),
        task_queue=task_queue,
    )
    STARTED.append(handle)
    return handle


def child_history_read(state: EpisodeState) -> bool:
    """Whether a new episode has read all it reads of its child at report time."""
    if state.trigger_plan_required is None:
        return False
    if RiskIndicator.CSE_CONCERN not in state.indicators:
        return True
    return bool(state.linked_referrals) or any(e.reason == "no_cse_referral" for e in state.escalations)


async def eventually(probe: Callable, check: Callable, timeout: float = 10.0):
    """Poll `probe()` (sync or async) until `check(value)` holds; return the value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.1)


async def state_when(handle: WorkflowHandle, check: Callable[[ReferralState], bool], timeout: float = 10.0) -> ReferralState:
    return await eventually(lambda: handle.query(ReferralWorkflow.state), check, timeout)


async def refused(
    handle: WorkflowHandle,
    update: Callable,
    decision: object,
    expected: str,
    referral: WorkflowHandle | None = None,
    query: Callable = ReferralWorkflow.state,
) -> None:
    """The update is refused with `expected` in its message, and the workflow is exactly as it was.

    For an agreed action's update, `handle` is the action's and `referral` its referral's: both stay as they were.
    Another workflow type (a day's triage) names its own state `query`.
    """

    async def states() -> tuple[object, ...]:
        if referral is None:
            return (await handle.query(query),)
        return await handle.query(AgreedActionWorkflow.state), await referral.query(ReferralWorkflow.state)

    before = await states()
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        # A decision taken instead of refused may leave the workflow stuck: the test fails rather than hangs.
        await asyncio.wait_for(handle.execute_update(update, decision), timeout=REFUSAL_WAIT)
    assert expected in str(caught.value.cause), str(caught.value.cause)
    assert await states() == before


async def advance_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to `moment`."""
    now = await env.get_current_time()
    if moment > now:
        await skip(env, moment - now)


# A skip waits while any workflow task or activity is in flight, so with many referrals open it
# can take a while on a busy machine; a skip still waiting after this long means the clock is held.
SKIP_PATIENCE = timedelta(minutes=2)


async def skip(env: WorkflowEnvironment, duration: timedelta, patience: timedelta = SKIP_PATIENCE) -> None:
    """Let the test server's clock run `duration` ahead, as `env.sleep`, with patience stated."""
    request = SleepRequest()
    request.duration.FromTimedelta(duration)
    await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=patience)


async def next_local(
    env: WorkflowEnvironment,
    weekday: int,
    hour: int,
    minute: int = 0,
    after_days: int = 1,
    avoiding: Collection[date] = (),
) -> datetime:
    """The next London-local `weekday` (Mon=0) at hour:minute, at least `after_days` from the
    server's now, and at least four days clear of any date in `avoiding` (bank holidays)."""
    now = (await env.get_current_time()).astimezone(LONDON) + timedelta(days=after_days)
    day = now.date()
    while day.weekday() != weekday or any(abs((day - other).days) <= 4 for other in avoiding):
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


async def finished(env: WorkflowEnvironment, handle: WorkflowHandle) -> ReferralState:
    """The workflow's result, without letting the time-skipping server race the clock ahead.

    Awaiting a result normally unlocks time skipping, and the test server then jumps to its
    far-future timeouts while activities are still writing; the tests move time themselves.
    """
    with env.auto_time_skipping_disabled():
        return await handle.result()


async def terminate_open_referrals(env: WorkflowEnvironment | None, patience: timedelta = timedelta(seconds=20)) -> None:
    """Terminate what the test left open, once nothing of it is in flight; then check the clock.

    The time-skipping test server holds its clock from the moment a workflow task or an
    activity is scheduled until it completes, and terminating the workflow in between never
    releases that hold: every later time skip would hang. So each open workflow (and each of
    its agreed actions) is terminated only once it is idle, and the clock is then skipped a
    minute to prove it is free, so a test that leaves it held fails itself, by name.
    """
    while STARTED:
        handle = STARTED.pop()
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await eventually(lambda: in_flight(handle), lambda busy: not busy, timeout=30)
            try:
                await handle.terminate(reason="test finished")
            except RPCError:
                # Its last step was what it waited for: it may have finished meanwhile.
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    raise
    if env is not None and env.supports_time_skipping:
        try:
            await skip(env, timedelta(minutes=1), patience=patience)
        except RPCError as held:
            raise AssertionError(f"this test left the test server's clock held: {held}") from held


async def in_flight(handle: WorkflowHandle) -> bool:
    """Whether the workflow, or any of its agreed actions, has a workflow task or an activity scheduled or running.

    Read from one snapshot, the history: a description and a history fetched one after the
    other can straddle a workflow task that schedules an activity and both look idle.
    """
    history = [event async for event in handle.fetch_history_events()]
    if history[-1].event_type in CLOSED:
        return False
    if history[-1].event_type in (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED):
        return True
    activities: set[int] = set()
    starting: set[int] = set()
    children: set[str] = set()
    for event in history:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.event_id)
        elif kind in ACTIVITY_CLOSED:
            activities.discard(getattr(event, ACTIVITY_CLOSED[kind]).scheduled_event_id)
        elif kind in INITIATED:
            starting.add(event.event_id)
        elif kind in SETTLED:
            starting.discard(getattr(event, SETTLED[kind]).initiated_event_id)
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            started = event.child_workflow_execution_started_event_attributes
            starting.discard(started.initiated_event_id)
            children.add(started.workflow_execution.workflow_id)
    if starting or (activities and not await only_backing_off(handle, activities)):
        return True
    for child in children:
        if await in_flight(handle._client.get_workflow_handle(child)):
            return True
    return False


async def only_backing_off(handle: WorkflowHandle, activities: set[int]) -> bool:
    """Whether every open activity is waiting out a retry backoff (the server frees its clock for that)."""
    pending = (await handle.describe()).raw_description.pending_activities
    return len(pending) == len(activities) and all(
        activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED and activity.attempt > 1
        for activity in pending
    )


CLOSED = frozenset({
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
})
# A child's start and a signal to another workflow hold the clock until they settle.
INITIATED = frozenset({
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
})
SETTLED = {
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "start_child_workflow_execution_failed_event_attributes",
    EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED: "external_workflow_execution_signaled_event_attributes",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED: "signal_external_workflow_execution_failed_event_attributes",
}
ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


def updates_of(workflow_class: type) -> dict[str, workflow._UpdateDefinition]:
    """The updates a workflow class defines, as the SDK reads them."""
    return {name: update for name, update in workflow._Definition.must_from_class(workflow_class).updates.items() if name}


def deciding_workflows() -> list[type]:
    """The workflows the worker runs that take decisions (updates)."""
    return [w for w in WORKFLOWS if updates_of(w)]


def workflow_clients() -> list[type[WorkflowClient]]:
    """Every client in starter/, found by importing each of its modules."""
    for module in pkgutil.iter_modules(starter.__path__):
        importlib.import_module(f"starter.{module.name}")
    return WorkflowClient.__subclasses__()


def decision_route(decision: type, update: str) -> APIRoute | None:
    """The API's POST route that takes `decision`: its body is the decision's request model, or, with no body, it is named after the update."""
    for route in (r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and "POST" in r.methods):
        bodies = [param.field_info.annotation.__name__ for param in route.dependant.body_params]
        if bodies == [f"{decision.__name__}Request"] or (not bodies and route.endpoint.__name__ == update):
            return route
    return None


def reason_of(problem: dict) -> dict:
    """A problem's reason and field, without the parts each occurrence has of its own (its ID, its title)."""
    return {"detail": problem["detail"], "field": problem["field"]}

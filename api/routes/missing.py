"""Missing-episode routes: a missing report starts an episode, its state (every read in the access log), the list, and each decision on it."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Response

from api import models as bodies
from api.deps import EPISODE, Channel, REFERRAL_LISTERS, Cursor, Limit, Svc, allowed, decode_cursor, page
from api.errors import ERRORS, invalid
from api.routes.decisions import DecisionRoute, add_decision_routes
from auth.tokens import Caller
from readmodel.queries import repeat_missing_since
from starter.missing import EPISODE_ID
from workflows.authority import (
    EPISODE_REVIEWERS,
    FINDERS,
    FREQUENCY_READERS,
    INTERVIEW_RECORDERS,
    MISSING_REPORTERS,
    TRACERS,
)
from workflows.missing_models import (
    EpisodePhase,
    EpisodeRegrade,
    EpisodeReview,
    EpisodeState,
    Found,
    LowGradeDecision,
    MissingReport,
    ReturnHomeInterview,
    StartMissingEpisode,
    TracingRecord,
    not_in_future,
)
from workflows.models import MissingGrade

log = structlog.get_logger("api")

router = APIRouter(responses=ERRORS, tags=["missing episodes"])


@router.post(
    "/missing-episodes",
    status_code=201,
    response_model=bodies.MissingIntake,
    summary="Report a child missing",
    responses={200: {"model": bodies.MissingIntake, "description": "this report was already made: the same episode"}},
)
async def report_missing(
    report: MissingReport,
    response: Response,
    caller: Annotated[Caller, Depends(allowed(MISSING_REPORTERS, "report a child missing"))],
    svc: Svc,
) -> bodies.MissingIntake:
    """A new episode (201), with no review in front of it; the same report again returns its episode (200).

    A child reported missing is always missing (there is no "absent" grade). A low grade with
    indicators that make it implausible is treated high until another supervisor keeps it.
    """
    # The workflow has no validator before its start: a time the wall clock refutes is refused here.
    problem = not_in_future(report.missing_since, await svc.clock(), "missing_since")
    if problem is not None:
        raise invalid(("body", "missing_since"), problem.split(": ", 1)[1])
    intake = await EPISODE.client(svc).report(
        StartMissingEpisode(report=report, reported_by=caller.actor, sla_policy=svc.sla_policy),
        svc.settings.task_queue,
    )
    if not intake.created:
        response.status_code = 200
    state = intake.state
    log.info("missing_reported", episode_id=state.episode_id, created=intake.created)
    return bodies.MissingIntake(
        episode_id=state.episode_id,
        phase=state.phase,
        grade=state.grade,
        low_grade_pending=state.low_grade_pending,
        review_due=state.review_due,
        tracing_due=state.tracing_due,
        trigger_plan=state.trigger_plan,
        trigger_plan_required=state.trigger_plan_required,
        created=intake.created,
    )


@router.get(
    "/missing-episodes/most-frequent",
    response_model=bodies.MostFrequentlyMissing,
    summary="The children most often missing in the repeat-missing window, live from the read model",
)
async def most_frequently_missing(
    caller: Annotated[Caller, Depends(allowed(FREQUENCY_READERS, "list the most frequently missing children"))],
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100, description="children in the list")] = 20,
) -> bodies.MostFrequentlyMissing:
    """Each child once (by identity key, never shown), by their latest episode's ID, with their episodes
    in the policy's window (`missing.repeat_missing_days`), most first."""
    now = await svc.clock()
    rows = await svc.read_model.most_frequently_missing(now=now, policy=svc.sla_policy.missing, limit=limit)
    return bodies.MostFrequentlyMissing(
        since=repeat_missing_since(now, svc.sla_policy.missing),
        items=[bodies.FrequentlyMissingChild(**dict(r)) for r in rows],
    )


@router.get("/missing-episodes/{episode_id}", response_model=EpisodeState, summary="A missing episode's state")
async def show_episode(
    episode_id: str,
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "read a missing episode"))],
    channel: Channel,
    svc: Svc,
) -> EpisodeState:
    """Phase, grade, deadlines, reviews, tracing, escalations, agreed actions and the decision history, from the workflow."""
    state = await EPISODE.client(svc).state(episode_id)
    await svc.access_log.record(caller.actor, channel, "show_missing_episode", episode_id)
    return state


@router.get("/missing-episodes", response_model=bodies.EpisodePage, summary="Missing episodes, newest first")
async def list_episodes(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list missing episodes"))],
    svc: Svc,
    phase: EpisodePhase | None = None,
    grade: MissingGrade | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> bodies.EpisodePage:
    rows = await svc.read_model.missing_episodes(
        now=await svc.clock(),
        limit=limit + 1,
        after=decode_cursor(cursor, EPISODE_ID),
        phase=phase.value if phase else None,
        grade=grade.value if grade else None,
    )
    items, next_cursor = page(rows, limit, "updated_at", "episode_id")
    return bodies.EpisodePage(items=[bodies.EpisodeSummary(**dict(r)) for r in items], next_cursor=next_cursor)


# Each decision on an episode: its path, the decision, who may make it (the workflow checks again).
EPISODE_DECISIONS = (
    DecisionRoute(EPISODE, "low-grade", LowGradeDecision, EPISODE_REVIEWERS, "keep or refuse a low grade"),
    DecisionRoute(EPISODE, "review", EpisodeReview, EPISODE_REVIEWERS, "review a missing episode"),
    DecisionRoute(EPISODE, "tracing", TracingRecord, TRACERS, "record tracing activity"),
    DecisionRoute(EPISODE, "grade", EpisodeRegrade, EPISODE_REVIEWERS, "regrade a missing episode"),
    DecisionRoute(EPISODE, "found", Found, FINDERS, "record a missing child found"),
    DecisionRoute(EPISODE, "return-home-interview", ReturnHomeInterview, INTERVIEW_RECORDERS,
                  "record a return-home interview"),
)
add_decision_routes(router, EPISODE_DECISIONS, "missing episodes")

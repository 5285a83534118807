"""The referrals pages: open referrals by stage, and one referral's timeline, facts, actions and the forms of its stage."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from auth.tokens import Caller
from dashboard.board import (
    CASE_READERS,
    LONDON,
    PREFIX,
    STAGE_ORDER,
    Board,
    PostedForm,
    SignedIn,
    local,
    stage_short,
    time_left,
    words,
)
from dashboard.charts import Band, Mark, Series, bar_chart, timeline
from dashboard.pages.decisions import (
    REFERRAL_FORMS,
    TRIAGE_FORMS,
    add_decision_forms,
    decide,
    offered,
    override_waiting,
    referral_forms,
)
from starter.referrals import Referrals
from starter.triage import Triages
from workflows.facts import Detail, RecordedEvent, SupervisorReviewed, VistSubmitted, visible_to
from starter.workflow_client import NoSuchWorkflow
from workflows.models import ReferralState, Stage

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/referrals", response_class=HTMLResponse)
async def referrals(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "referrals")
    now = await board.clock()
    rows = await board.oversight.open_referrals_by_stage(now)
    stages: dict[Stage, dict[str, Any]] = {s: {"count": 0, "late": 0, "referrals": []} for s in STAGE_ORDER}
    for row in rows:
        stage = stages[Stage(row["stage"])]
        stage["count"], stage["late"] = row["in_stage"], row["late_in_stage"]
        stage["referrals"].append(dict(row) | {"left": time_left(row["deadline"], now)})
    counts = bar_chart(
        "Open referrals by stage",
        [stage_short(s) for s in STAGE_ORDER],
        [Series("late", [stages[s]["late"] for s in STAGE_ORDER], "red"),
         Series("in time", [stages[s]["count"] - stages[s]["late"] for s in STAGE_ORDER], "blue")],
        axis="Stage",
    )
    return board.page(request, "referrals.html", caller, stages=stages, chart=counts, now=local(now))


@router.get("/referrals/{reference}", response_class=HTMLResponse)
async def referral(request: Request, board: Board, reference: str, caller: SignedIn) -> Response:
    return await referral_page(request, board, reference, caller)


@router.post("/referrals/{reference}/triage/{triage_id}")
async def decide_at_triage(request: Request, board: Board, reference: str, triage_id: str, caller: SignedIn,
                           fields: PostedForm) -> Response:
    """The day's triage decides on this referral: the triage's workflow takes it, for the referral the page is of."""

    async def page(status: int, **context: Any) -> Response:
        return await referral_page(request, board, reference, caller, status=status, **context)

    return await decide(board, caller, fields | {"reference": reference}, TRIAGE_FORMS, "triage",
                        Triages(board.client, board.decision_timeout), triage_id, page,
                        f"{PREFIX}/referrals/{reference}")


async def referral_page(request: Request, board: Board, reference: str, caller: Caller, status: int = 200, **context: Any) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "referrals")
    row = await board.oversight.referral(reference) if Referrals.matches(reference) else None
    if row is None:
        return board.page(request, "referral.html", caller, status=404, referral=None)
    await board.access_log.record(caller.actor, "dashboard", "read_referral", reference=reference)
    now = await board.clock()
    # The forms follow the workflow's own stage, which the read model reaches a moment later.
    state = await open_state(board, reference) if row["closed_at"] is None else None
    done = request.query_params.get("done")
    triaged = await board.panels.triage_decisions(reference)
    # The latest triage that listed it and has not decided yet: its decision is taken here.
    waiting = [t for t in triaged if t["decided_at"] is None][:1] if offered(TRIAGE_FORMS, caller) else []
    facts, spans, attendees, agreed, raised = (
        [f for f in await board.oversight.timeline(reference) if visible_to(caller.actor.role, f.kind)],
        await board.oversight.stage_spans(reference),
        await board.oversight.attendees(reference),
        await board.oversight.actions(reference),
        await board.oversight.escalations(reference),
    )
    forms = referral_forms(caller, state) if state else []
    if "resubmission" in forms and not own_vist(caller, facts):
        forms.remove("resubmission")
    return board.page(
        request,
        "referral.html",
        caller,
        status=status,
        override_pending=state is not None and override_waiting(state),
        referral=dict(row) | {"left": time_left(row["deadline"], now) if row["closed_at"] is None else None},
        chart=referral_timeline(spans, facts, agreed, raised, now),
        facts=[fact_view(fact) for fact in facts],
        attendees=attendees,
        missing_roles=await board.oversight.missing_roles(reference),
        triaged=triaged,
        waiting_triages=waiting,
        sittings=await board.panels.sittings_of_case(reference),
        actions=[dict(a) | {"left": time_left(a["deadline"], now) if a["completed_at"] is None else None}
                 for a in agreed],
        escalations=raised,
        state=state,
        forms=forms,
        # Why the VIST came back, for the officer who corrects it: their own VIST's review, on their form alone.
        returned_for=returned_for(facts) if "resubmission" in forms else None,
        done=(REFERRAL_FORMS | TRIAGE_FORMS)[done].done if done in REFERRAL_FORMS | TRIAGE_FORMS else None,
        **context,
    )


async def open_state(board: Board, reference: str) -> ReferralState | None:
    """The open referral's state from its workflow, or None once it has finished and gone."""
    try:
        return await board.referrals.state(reference)
    except NoSuchWorkflow:
        return None


def own_vist(caller: Caller, facts: list[RecordedEvent]) -> bool:
    """The VIST is the caller's own: only its officer corrects and resubmits it (the workflow checks again)."""
    return any(isinstance(f.content, VistSubmitted) and f.content.submission.officer_id == caller.actor.id
               for f in facts)


def returned_for(facts: list[RecordedEvent]) -> str | None:
    """The reasons the supervisor gave when they last returned the VIST."""
    returns = [f.content for f in facts if isinstance(f.content, SupervisorReviewed) and not f.content.approved]
    return returns[-1].reasons if returns else None


def detail(value: Detail) -> str:
    return local(value) if isinstance(value, datetime) else words(value)


def fact_view(fact: RecordedEvent) -> dict[str, Any]:
    """A fact as its registry entry reads it: its label and structured summary, never free text."""
    details = [f"{words(k)}: {detail(v)}" for k, v in fact.content.summary().items() if v is not None]
    return {
        "at": local(fact.at),
        "what": fact.entry.label,
        "stream": fact.stream,
        "actor": f"{fact.actor.id} ({fact.actor.role.value}, {words(fact.actor.agency.value)})",
        "details": ", ".join(details),
        "decision": fact.entry.decision,
    }


def referral_timeline(
    spans: list[asyncpg.Record],
    facts: list[RecordedEvent],
    agreed: list[asyncpg.Record],
    raised: list[asyncpg.Record],
    now: datetime,
) -> Any:
    if not spans:
        return ""
    bands = [
        Band(words(s["stage"]), s["entered_at"].astimezone(LONDON), (s["left_at"] or now).astimezone(LONDON),
             s["deadline"].astimezone(LONDON) if s["deadline"] else None)
        for s in spans
        if s["stage"] != Stage.CLOSED.value
    ]
    marks = [Mark(f.at.astimezone(LONDON), "decision", f.entry.label) for f in facts if f.entry.decision]
    marks += [
        Mark(e["raised_at"].astimezone(LONDON), "acknowledged" if e["acknowledged_at"] else "escalation",
             f"{e['escalation_id']}: {e['rank']}{', acknowledged' if e['acknowledged_at'] else ''}")
        for e in raised
    ]
    marks += [Mark(a["deadline"].astimezone(LONDON), "deadline", f"{a['action_id']} due") for a in agreed]
    start = spans[0]["entered_at"].astimezone(LONDON)
    closed = spans[-1]["stage"] == Stage.CLOSED.value
    end = max([spans[-1]["entered_at"] if closed else now] + [m.at for m in marks]).astimezone(LONDON)
    return timeline(bands, marks, start, end + (end - start) * 0.02)


add_decision_forms(router, "referrals", REFERRAL_FORMS, lambda board: board.referrals, referral_page)

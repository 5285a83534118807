"""A closed input domain: text PostgreSQL can store, times in a sane window, meetings after what they follow.

Each poison is refused where it enters, with the field named and the value never echoed:
a 422 from the API's models, a 422 from the intake's wall-clock check, or a rejection by
the workflow's validator (409 through the API) when only the referral knows the rule.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError

from activities.records import ReferralRecords
from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    HEALTH_PARTNER,
    OFFICER,
    SCREENER,
    SERGEANT,
    screening,
    strategy_discussion,
    synthetic_partner_referral,
    synthetic_vist,
)
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import eventually, reason_of
from workflows.facts import RecordedEvent
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    ActionReassignment,
    AdultInvolved,
    AdultRole,
    Agency,
    AgreedActionSpec,
    CloseReason,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    CscNotInformed,
    PartnerReferral,
    PoliceAttendance,
    RiskGrade,
    RiskRegrade,
    Screening,
    ScreeningOutcome,
    Stage,
    StrategyDiscussion,
    SupervisorReview,
    VistSubmission,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x85"]
OUT_OF_WINDOW = ["0001-01-01T05:00:00+14:00", "9999-12-31T23:00:00-14:00", "1899-12-31T23:00:00+00:00"]
BAD_OFFSETS = ["2024-03-01T10:00:00+14:30", "2024-03-01T10:00:00-15:00", "2024-03-01T10:00:00+23:59"]


def form(seed: str) -> dict[str, Any]:
    submission = synthetic_vist(rng=random.Random(f"input-domain:{seed}"))
    data = form_json(submission)
    data["adults"] = [AdultInvolved(name="Synthetic Adult", role=AdultRole.PARENT_OR_CARER).model_dump(mode="json")]
    data["incident"]["summary"] = "Synthetic summary."
    return data


def put(data: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


# Every kind of text field of the form: free text, short text (names), and IDs.
FREE_TEXT = [("incident", "location"), ("incident", "summary"), ("children", 0, "observed"),
             ("children", 0, "voice_of_the_child"), ("children", 0, "home_address")]
SHORT_TEXT = [("station",), ("children", 0, "name"), ("adults", 0, "name")]
IDS = [("officer_id",), ("children", 0, "child_id")]


async def send(api, auth, path: str, user: str, body: dict[str, Any]):
    """The body as ASCII JSON: a lone surrogate travels as its escape, as any JSON client may send it."""
    return await api.post(path, content=json.dumps(body), headers=auth(user) | {"Content-Type": "application/json"})


async def refused_intake(api, auth, data: dict[str, Any], field: tuple, poison: str) -> list[dict]:
    response = await send(api, auth, "/referrals", "officer", data)
    assert response.status_code == 422, (field, response.text)
    detail = response.json()["errors"]
    assert any(tuple(error["loc"][1:len(field) + 1]) == field for error in detail), (field, detail)
    if len(poison) > 2:  # a lone control character could appear by chance in a message; a value never
        assert poison not in response.text
    return detail


@pytest.mark.parametrize("field", FREE_TEXT + SHORT_TEXT + IDS, ids=lambda f: ".".join(map(str, f)))
async def test_control_characters_and_surrogates_in_any_text_field_are_422(api, auth, field):
    data = form("text")
    for bad in [*CONTROLS, "\ud800", "\udfff"]:
        poison = f"Synthetic{bad}value"
        await refused_intake(api, auth, put(data, field, poison), field, poison)


async def test_free_text_keeps_line_breaks_and_tabs_short_text_does_not(api, auth, time_env, pool):
    data = put(form("lines"), ("children", 0, "observed"), "Line one.\n\tLine two.\r\nLine three.")
    response = await api.post("/referrals", json=data, headers=auth("officer"))
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    track(time_env.client, reference)
    # Recorded whole; and the referral is left idle, never with a write in flight when the test ends.
    form_text = await eventually(
        lambda: pool.fetchval("SELECT form->'children'->0->>'observed' FROM submission_versions WHERE reference = $1",
                              reference),
        lambda text: text is not None,
    )
    assert form_text == "Line one.\n\tLine two.\r\nLine three."
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", reference),
                     lambda n: n == 2)
    await refused_intake(api, auth, put(form("lines"), ("station",), "Test\ntown"), ("station",), "Test\ntown")


@pytest.mark.parametrize("moment", OUT_OF_WINDOW + BAD_OFFSETS)
@pytest.mark.parametrize("field", [("incident", "occurred_at"), ("section_46", "used_at")], ids=".".join)
async def test_times_outside_the_window_or_with_unreal_offsets_are_422(api, auth, field, moment):
    data = form("times")
    if field[0] == "section_46":
        data["section_46"] = {"used_at": data["incident"]["occurred_at"], "child_ids": ["C1"],
                              "accommodation": "Synthetic foster placement."}
        data["initial_risk"] = "high"
    await refused_intake(api, auth, put(data, field, moment), field, moment)


async def test_dates_of_birth_outside_the_window_are_422(api, auth):
    for field in [("adults", 0, "date_of_birth"), ("children", 0, "date_of_birth")]:
        await refused_intake(api, auth, put(form("dob"), field, "0001-01-01"), field, "0001-01-01")


async def test_an_incident_or_police_protection_in_the_future_is_422(api, auth, time_env):
    later = (await time_env.get_current_time() + timedelta(days=2)).isoformat()
    data = form("future")
    detail = await refused_intake(api, auth, put(data, ("incident", "occurred_at"), later),
                                  ("incident", "occurred_at"), later)
    assert detail[0]["msg"] == "is in the future"
    data["section_46"] = {"used_at": later, "child_ids": ["C1"], "accommodation": "Synthetic foster placement."}
    data["initial_risk"] = "high"
    await refused_intake(api, auth, data, ("section_46", "used_at"), later)


async def at_strategy_discussion(api, auth, time_env, seed: str) -> tuple[VistSubmission, str]:
    submission = synthetic_vist(rng=random.Random(f"input-domain:{seed}"))
    response = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    track(time_env.client, reference)
    for path, user, body in [
        ("supervisor-review", "sergeant", {"approved": True}),
        ("screening", "screener",
         screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION).details()),
    ]:
        step = await api.post(f"/referrals/{reference}/{path}", json=body, headers=auth(user))
        assert step.status_code == 200, step.text
    return submission, reference


async def test_meetings_cannot_precede_what_they_follow_nor_lie_in_the_future(api, auth, time_env, pool):
    submission, reference = await at_strategy_discussion(api, auth, time_env, "meetings")
    path = f"/referrals/{reference}"
    now = await time_env.get_current_time()

    def discussion(held_at: datetime) -> dict:
        return strategy_discussion(held_at, section_47=True, actions=0).details()

    for held_at, reason in [
        (datetime(2020, 1, 6, 10, tzinfo=timezone.utc), "held_at: a strategy discussion cannot be held before the incident"),
        (submission.incident.occurred_at + timedelta(minutes=1),
         "held_at: a strategy discussion cannot be held before the referral was submitted"),
        (now + timedelta(days=1), "held_at: a strategy discussion cannot be recorded before it is held"),
    ]:
        response = await api.post(f"{path}/strategy-discussion", json=discussion(held_at), headers=auth("screener"))
        assert (response.status_code, reason_of(response.json())) == (409, {"detail": reason, "field": "held_at"})
    for bad in ["0001-01-01T05:00:00+14:00", "2024-03-01T10:00:00+14:30"]:
        response = await api.post(f"{path}/strategy-discussion", json=discussion(now) | {"held_at": bad},
                                  headers=auth("screener"))
        assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "held_at"]
    poisoned = discussion(now)
    poisoned["attendees"][0]["name"] = "Synthetic\x00Name"
    poisoned["rationale"] = "Synthetic\x1brationale"
    response = await api.post(f"{path}/strategy-discussion", json=poisoned, headers=auth("screener"))
    assert response.status_code == 422
    assert {tuple(e["loc"]) for e in response.json()["errors"]} == {
        ("body", "attendees", 0, "name"), ("body", "rationale")
    }

    discussed = await api.post(f"{path}/strategy-discussion", json=discussion(now), headers=auth("screener"))
    assert discussed.status_code == 200, discussed.text
    conference_at = now + timedelta(minutes=2)
    booked = await api.post(f"{path}/conference", headers=auth("sergeant"),
                            json={"conference_at": conference_at.isoformat(), "police_attendance": "attend"})
    assert booked.status_code == 200, booked.text
    outcome = {"child_protection_plan": False, "police_attended": True, "rationale": "Synthetic."}
    before = await api.post(f"{path}/conference-outcome", headers=auth("screener"),
                            json=outcome | {"held_at": (conference_at - timedelta(hours=1)).isoformat()})
    assert (before.status_code, before.json()["field"]) == (409, "held_at")
    assert "before the time it was booked for" in before.json()["detail"]
    decisions = await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", reference)
    held = await api.post(f"{path}/conference-outcome", headers=auth("screener"),
                          json=outcome | {"held_at": conference_at.isoformat()})
    assert held.status_code == 200, held.text
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", reference) > decisions


async def test_the_workflow_validator_refuses_poison_sent_straight_to_it(api, auth, time_env):
    submission, reference = await at_strategy_discussion(api, auth, time_env, "straight")
    handle = time_env.client.get_workflow_handle_for(ReferralWorkflow.run, reference)
    before = await handle.query(ReferralWorkflow.state)
    now = await time_env.get_current_time()
    good = strategy_discussion(now, section_47=False, actions=0)
    early = good.model_copy(update={"held_at": datetime(2020, 1, 6, 10, tzinfo=timezone.utc)})
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(ReferralWorkflow.record_strategy_discussion, early)
    assert "held_at: a strategy discussion cannot be held before the incident" in str(caught.value.cause)
    # A model built without validation (a client that skipped it) is refused when the workflow decodes it.
    nul = StrategyDiscussion.model_construct(**(dict(good) | {"rationale": "Synthetic\x00rationale"}))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(ReferralWorkflow.record_strategy_discussion, nul)
    after = await handle.query(ReferralWorkflow.state)
    assert after.history == before.history and after.stage is Stage.STRATEGY_DISCUSSION


def test_models_refuse_poison_with_the_field_named_and_never_the_value():
    data = form("models")
    for field, poison in [(("station",), "Test\x00town"), (("incident", "occurred_at"), "0001-01-01T05:00:00+14:00")]:
        with pytest.raises(ValidationError) as caught:
            VistSubmission.model_validate(put(data, field, poison))
        (error,) = caught.value.errors(include_input=False)
        assert error["loc"] == field
        assert poison not in error["msg"]


# --- property: whatever the models accept, PostgreSQL can record ---------------------------------

POISON_CHARS = st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\x85", "\ud800", "\udfff", "\n", "\t", "\r",
                                "\u2028", "\ufeff", "\uffff", "\U0010ffff", "é", "😀"])
TEXT = st.one_of(
    st.text(alphabet=st.one_of(st.characters(), POISON_CHARS), min_size=1, max_size=40),
    # Plain text with one character PostgreSQL cannot hold in the middle: the poison that was seen.
    st.tuples(st.text(min_size=1, max_size=8), st.sampled_from(["\x00", "\ud800", "\udfff"]),
              st.text(max_size=8)).map("".join),
)
OFFSETS = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                            max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timedelta(minutes=int(d.total_seconds() // 60))))
MOMENTS = st.one_of(
    # The edges of what Python can hold, where converting to UTC overflows: the poison that was seen.
    st.sampled_from(["0001-01-01T05:00:00+14:00", "9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+23:59"]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=OFFSETS),
    st.datetimes(min_value=datetime(1899, 12, 30), max_value=datetime(1900, 1, 2), timezones=OFFSETS),
    st.datetimes(min_value=datetime(2199, 12, 30), max_value=datetime(2200, 1, 2), timezones=OFFSETS),
).map(lambda d: d if isinstance(d, str) else d.isoformat())
DATES = st.dates(min_value=datetime(1, 1, 1).date()).map(lambda d: d.isoformat())
NUMBERS = st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=True, allow_infinity=True))


def leaves(value: Any, prefix: tuple = ()) -> list[tuple]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if children is None:
        return [prefix]
    return [path for key, child in children for path in leaves(child, prefix + (key,))]


def poison_for(leaf: Any) -> st.SearchStrategy:
    """A value of the leaf's own kind, drawn from the edges: text with any character, any moment or offset."""
    if isinstance(leaf, str):
        try:
            datetime.fromisoformat(leaf)
        except ValueError:
            # Sometimes the leaf unchanged (an enum, an ID), so that models with many such leaves are accepted too.
            return st.one_of(TEXT, st.just(leaf))
        return DATES if len(leaf) == 10 else MOMENTS
    if isinstance(leaf, bool) or leaf is None:
        return st.one_of(TEXT, NUMBERS)
    return NUMBERS


def recordable_cases(now: datetime) -> list[tuple[type, dict, Any]]:
    """Each model the API accepts, a valid instance's JSON, and how the workflow turns it into (kind, payload)."""
    submission = synthetic_vist(rng=random.Random("input-domain:property"))
    owner = ActionOwner(agency=Agency.HEALTH, owner="Health Visitor Synthetic", supervisor="Health Lead Synthetic")
    spec = AgreedActionSpec(description="Synthetic action.", owner=owner, deadline=now + timedelta(days=3))
    dump = lambda d: d.details()  # noqa: E731  # what the workflow records of a decision
    cases = [
        (VistSubmission, form_json(submission), lambda m: ("vist_submitted", {"version": 1, "submission": m.model_dump(mode="json")})),
        (PartnerReferral, synthetic_partner_referral(rng=random.Random("input-domain:partner")).model_dump(mode="json"),
         lambda m: ("partner_referral_received", {"version": 1, "submission": m.model_dump(mode="json")})),
        (CscNotInformed, CscNotInformed(actor=SERGEANT, rationale="Synthetic.").model_dump(mode="json"),
         lambda m: ("csc_not_informed_decided", dump(m))),
        (StrategyDiscussion, strategy_discussion(now, section_47=True, actions=1).model_dump(mode="json"),
         lambda m: ("strategy_discussion_held", dump(m) | {"quorate": m.quorate})),
        (ConferenceBooking, ConferenceBooking(actor=SCREENER, conference_at=now, police_attendance=PoliceAttendance.REPORT_IN_LIEU,
                                              attendance_rationale="Synthetic.", report_owner="DC Synthetic",
                                              late_reason="Synthetic.").model_dump(mode="json"),
         lambda m: ("conference_booked", dump(m) | {"due_by": now.isoformat(), "deadline": now.isoformat()})),
        (ConferenceOutcome, ConferenceOutcome(actor=SCREENER, held_at=now, child_protection_plan=True, police_attended=True,
                                              rationale="Synthetic.", agreed_actions=[spec],
                                              allocated_social_worker=ALLOCATED_SOCIAL_WORKER).model_dump(mode="json"),
         lambda m: ("conference_held", dump(m))),
        (Screening, screening(submission, ScreeningOutcome.EARLY_HELP).model_dump(mode="json"),
         lambda m: ("screened", dump(m))),
        (SupervisorReview, SupervisorReview(actor=SERGEANT, approved=False, reasons="Synthetic.").model_dump(mode="json"),
         lambda m: ("supervisor_reviewed", dump(m))),
        (RiskRegrade, RiskRegrade(actor=SCREENER, risk=RiskGrade.HIGH, reason="Synthetic.").model_dump(mode="json"),
         lambda m: ("risk_regraded", {"from_risk": "medium", "to_risk": m.risk.value, "reason": m.reason,
                                      "deadline": now.isoformat()})),
        (Closure, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN, note="Synthetic.").model_dump(mode="json"),
         lambda m: ("closed", {"reason": m.reason.value, "note": m.note})),
        (AgreedActionSpec, spec.model_dump(mode="json"), lambda m: ("action_agreed", m.model_dump(mode="json"))),
        (ActionReassignment, ActionReassignment(actor=SCREENER, owner=owner, reason="Synthetic.",
                                                deadline=now + timedelta(days=9)).model_dump(mode="json"),
         lambda m: ("action_reassigned", dump(m) | {"from_owner": owner.model_dump(mode="json")})),
        (ActionCompletion, ActionCompletion(actor=HEALTH_PARTNER, note="Synthetic.").model_dump(mode="json"),
         lambda m: ("action_completed", {"note": m.note})),
    ]
    # The proof is the API client's, never a caller's: it is not part of what is drawn.
    return [(model_type, {k: v for k, v in body.items() if k != "proof"}, to_fact) for model_type, body, to_fact in cases]


async def test_whatever_the_models_accept_postgresql_can_record(pool):
    records = ReferralRecords(pool)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    cases = recordable_cases(now)
    numbers = itertools.count(1)
    loop = asyncio.get_running_loop()
    accepted: list[str] = []

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    async def record(model_type: type, model: Any, to_fact) -> None:
        # A referral of its own, recorded as the workflow records one, then the fact under test.
        base = synthetic_vist(rng=random.Random(f"input-domain:property:{next(numbers)}"))
        reference = referral_reference(base.form_id)
        opening = model_type in (VistSubmission, PartnerReferral)  # a form that opens a referral
        if opening:
            base = model.model_copy(update={"form_id": base.form_id})
        first_kind = "partner_referral_received" if model_type is PartnerReferral else "vist_submitted"
        first = RecordedEvent(stream=reference, seq=1, reference=reference, kind=first_kind, at=now,
                              actor=OFFICER, stage=Stage.SUPERVISOR_REVIEW, risk=base.initial_risk,
                              payload={"version": 1, "submission": base.model_dump(mode="json")})
        outcome = await records.record_event(first)
        assert outcome.recorded and not outcome.quarantined, outcome
        if opening:
            return
        stream = reference
        kind, payload = to_fact(model)
        if kind.startswith("action_"):
            stream = f"{reference}.A1"
            if kind != "action_agreed":  # an action's later facts follow its agreement
                spec = AgreedActionSpec(description="Synthetic.", owner=ActionOwner(agency=Agency.POLICE, owner="DC"),
                                        deadline=now + timedelta(days=2))
                agreed = RecordedEvent(stream=stream, seq=1, reference=reference, kind="action_agreed", at=now,
                                       actor=SCREENER, payload=spec.model_dump(mode="json"))
                assert (await records.record_event(agreed)).recorded
        fact = RecordedEvent(stream=stream, seq=1 if kind == "action_agreed" else 2, reference=reference, kind=kind, at=now, actor=SCREENER,
                             stage=None if stream != reference else Stage.STRATEGY_DISCUSSION,
                             risk=None if stream != reference else RiskGrade.MEDIUM, payload=payload)
        outcome = await records.record_event(fact)
        assert outcome.recorded and not outcome.quarantined, (model_type.__name__, kind, outcome)

    @settings(max_examples=800, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def accepted_means_recordable(data: st.DataObject) -> None:
        model_type, body, to_fact = data.draw(st.sampled_from(cases), label="model")
        places = leaves(body)
        for where in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=2, unique=True), label="where"):
            leaf = body
            for key in where:
                leaf = leaf[key]
            body = put(body, where, data.draw(poison_for(leaf), label=".".join(map(str, where))))
        try:
            model = model_type.model_validate(body)
        except ValidationError:
            return
        accepted.append(model_type.__name__)
        run(record(model_type, model, to_fact))

    await asyncio.to_thread(accepted_means_recordable)
    # The property is about accepted values: enough of every model were accepted to mean something.
    assert set(accepted) == {case[0].__name__ for case in cases}, sorted(set(accepted))
    assert len(accepted) >= 100

"""Decisions in the browser: the API's rules, each refusal beside its field, the maker only from the session, a form
sent twice applied once, a racing decision refused, and each form offered only to those who may use it."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx

from starter.panels import PanelSittings
from starter.synthetic import (
    CALL_HANDLER, OFFICER, SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_missing_report,
)
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import (
    STARTED, advance_to, eventually, main_of, next_local, seeded, sign_in, start_episode, start_referral,
)
from tests.test_panels import a_panel, built, in_read_model, sitting_of
from tests.test_triage import at, listed_in_read_model, open_triage, referral_at
from workflows.action import AgreedActionWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodePhase, InterviewOutcome, RiskIndicator
from workflows.models import Agency, MissingGrade, RiskGrade, ScreeningOutcome, Stage, SupervisorReview
from workflows.panel import PanelSittingWorkflow
from workflows.plan import TriggerPlanWorkflow
from workflows.panel_models import AgendaAddition, AgendaCriterion, AgendaEdit, SittingPhase
from workflows.calendar import is_working_day
from workflows.triage import DailyTriageWorkflow
from workflows.triage_models import TriageOutcome
from workflows.referral import ReferralWorkflow

LONDON = ZoneInfo("Europe/London")


def written(moment) -> str:
    """A time as a person writes it in a form: London day/month/year and 24-hour time."""
    return moment.astimezone(LONDON).strftime("%d/%m/%Y %H:%M")


def form_key(page: str, form: str) -> str:
    """The idempotency key the page drew into one of its forms."""
    block = page.split(f'data-form="{form}"', 1)[1]
    return re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', block).group(1)


def field(page: str, field_id: str) -> str:
    """One field's element, as the page drew it."""
    return re.search(rf'<(?:input|textarea|select|fieldset)[^>]*id="{field_id}"[^>]*>', page).group()


async def referral(time_env, time_queue, sla_policy, pool, seed: int):
    """A new referral at supervisor review, once its page can be drawn (the read model holds it)."""
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=seed)
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1", handle.id),
                     lambda n: n == 1)
    return submission, handle


async def at_screening(time_env, time_queue, sla_policy, pool, seed: int):
    submission, handle = await referral(time_env, time_queue, sla_policy, pool, seed)
    await handle.execute_update(ReferralWorkflow.review, approval())
    return submission, handle


async def discussed(time_env, time_queue, sla_policy, pool, seed: int, *, section_47: bool, actions: int):
    """A referral past its strategy discussion, held now: at the conference (section 47) or its actions."""
    submission, handle = await at_screening(time_env, time_queue, sla_policy, pool, seed)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = await time_env.get_current_time()
    await handle.execute_update(ReferralWorkflow.record_strategy_discussion,
                                strategy_discussion(now, section_47=section_47, actions=actions))
    return handle, now


async def test_a_refused_form_shows_each_error_beside_its_field_and_changes_nothing(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    submission, handle = await at_screening(time_env, time_queue, sla_policy, pool, 1801)
    before = await handle.query(ReferralWorkflow.state)
    screener = await sign_in(api, tokens["screener"])
    path = f"/dashboard/referrals/{handle.id}"
    page = (await api.get(path, headers=screener.headers)).text
    # The screening form, a decision for every child, is offered; nothing else of the stage's is.
    assert 'data-form="screening"' in page and 'data-form="review"' not in page
    for index, child in enumerate(submission.children):
        assert f'name="child_decisions.{index}.child_id" value="{child.child_id}"' in page

    form = screener.form(
        idempotency_key=form_key(page, "screening"), risk="purple", outcome="strategy_discussion",
        rationale="Synthetic screening rationale.", **{"child_decisions.0.decision": "strategy_discussion"},
        **{f"child_decisions.{i}.child_id": c.child_id for i, c in enumerate(submission.children)},
    )
    refused = await api.post(f"{path}/decisions/screening", data=form, headers=screener.headers)
    assert refused.status_code == 422
    text = refused.text
    for name in ("risk", "child_decisions-0-rationale"):
        error_id = f"screening-{name}-error"
        assert f'id="{error_id}"' in text, name
        drawn = field(text, f"screening-{name}")
        assert error_id in drawn and 'aria-invalid="true"' in drawn
    # The summary above the form links to each field; what was written stays; the same key goes with the form.
    assert '<a href="#screening-risk">risk: ' in text
    assert "Synthetic screening rationale.</textarea>" in text
    assert form_key(text, "screening") == form["idempotency_key"]
    assert await handle.query(ReferralWorkflow.state) == before


async def test_a_form_names_its_maker_only_by_the_session(api, tokens, time_env, time_queue, sla_policy, pool):
    _, handle = await referral(time_env, time_queue, sla_policy, pool, 1802)
    before = await handle.query(ReferralWorkflow.state)
    sergeant = await sign_in(api, tokens["sergeant"])
    path = f"/dashboard/referrals/{handle.id}/decisions/review"
    for forged in ({"actor.id": "PS-9999", "actor.role": "supervisor"}, {"proof.key_id": "k", "proof.signature": "s"},
                   {"made_at": "2020-01-01T00:00:00+00:00"}):
        response = await api.post(path, data=sergeant.form(approved="true", **forged), headers=sergeant.headers)
        assert response.status_code == 422 and "Extra inputs are not permitted" in response.text, forged
    assert await handle.query(ReferralWorkflow.state) == before
    # A partner is not offered the form, and is refused it as the API refuses them.
    partner = await sign_in(api, tokens["health-partner"])
    response = await api.post(path, data=partner.form(approved="true"), headers=partner.headers)
    assert response.status_code == 403 and "partner may not" in response.text.lower()
    assert await handle.query(ReferralWorkflow.state) == before


async def test_the_same_form_sent_twice_is_applied_once_and_a_racing_decision_is_refused(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    _, handle = await referral(time_env, time_queue, sla_policy, pool, 1803)
    sergeant = await sign_in(api, tokens["sergeant"])
    path = f"/dashboard/referrals/{handle.id}"
    page = (await api.get(path, headers=sergeant.headers)).text
    form = sergeant.form(idempotency_key=form_key(page, "review"), approved="true")
    for _ in range(2):  # a double click, or the form sent again from the browser's history
        sent = await api.post(f"{path}/decisions/review", data=form, headers=sergeant.headers)
        assert (sent.status_code, sent.headers["location"]) == (303, f"{path}?done=review")
    reviews = await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1 AND kind = $2",
                              handle.id, "supervisor_reviewed"),
        lambda n: n >= 1,
    )
    assert reviews == 1 and (await handle.query(ReferralWorkflow.state)).stage is Stage.SCREENING
    # Another supervisor's form, drawn before the first was sent, is a decision of its own: refused by the workflow.
    inspector = await sign_in(api, tokens["inspector"])
    racing = await api.post(f"{path}/decisions/review", data=inspector.form(approved="false", reasons="Synthetic."),
                            headers=inspector.headers)
    assert racing.status_code == 409 and "Not recorded" in racing.text and "stage" in racing.text
    assert (await handle.query(ReferralWorkflow.state)).stage is Stage.SCREENING


async def test_a_returned_vist_is_corrected_and_resubmitted_by_its_officer_on_the_referrals_page(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    submission, handle = await referral(time_env, time_queue, sla_policy, pool, 1807)
    await handle.execute_update(ReferralWorkflow.review, SupervisorReview(
        actor=SERGEANT, approved=False, reasons="Synthetic: say what the child said."))
    path = f"/dashboard/referrals/{handle.id}"
    officer = await sign_in(api, tokens["officer"])
    page = (await eventually(lambda: api.get(path, headers=officer.headers),
                             lambda r: 'data-form="resubmission"' in r.text)).text
    assert f'name="submission.form_id" value="{submission.form_id}"' in page
    # Why it came back is on the officer's form, and on no one else's page.
    page = (await eventually(lambda: api.get(path, headers=officer.headers),
                             lambda r: "say what the child said" in r.text)).text
    # The supervisor reads the returned referral but is offered nothing to resubmit.
    sergeant = await sign_in(api, tokens["sergeant"])
    returned = (await api.get(path, headers=sergeant.headers)).text
    assert 'data-form="resubmission"' not in returned and "say what the child said" not in returned

    now = await time_env.get_current_time()
    vist = {"submission.form_id": str(submission.form_id), "submission.incident.type": "domestic_abuse",
            "submission.incident.occurred_at": written(now - timedelta(hours=2)),
            "submission.incident.location": "Synthetic: 1 Test Row, Testtown", "submission.station": "Testtown",
            "submission.children.0.name": "Synthetic Child Returned", "submission.children.0.date_of_birth": "04/03/2016",
            "submission.children.0.observed": "Synthetic: in the next room.", "submission.initial_risk": "medium"}
    # Domestic abuse needs the child's voice: refused beside that child's field, the officer's words kept.
    refused = await api.post(f"{path}/decisions/resubmission", headers=officer.headers,
                             data=officer.form(idempotency_key=form_key(page, "resubmission"), **vist))
    assert refused.status_code == 422
    drawn = field(refused.text, "resubmission-submission-children-0-voice_of_the_child")
    assert "resubmission-submission-children-0-voice_of_the_child-error" in drawn
    assert 'value="Synthetic Child Returned"' in refused.text
    assert (await handle.query(ReferralWorkflow.state)).stage is Stage.RETURNED_TO_OFFICER
    vist["submission.children.0.voice_of_the_child"] = "Synthetic: said they were scared."
    for _ in range(2):  # sent twice: one resubmission
        sent = await api.post(f"{path}/decisions/resubmission", headers=officer.headers,
                              data=officer.form(idempotency_key=form_key(refused.text, "resubmission"), **vist))
        assert (sent.status_code, sent.headers["location"]) == (303, f"{path}?done=resubmission"), sent.text
    state = await handle.query(ReferralWorkflow.state)
    assert (state.stage, state.submission_versions, state.children) == (Stage.SUPERVISOR_REVIEW, 2, ["C1"])
    # The VIST it now holds is the one the officer wrote, submitted under their own name.
    versions = await eventually(
        lambda: pool.fetch("SELECT actor_id FROM referral_events WHERE reference = $1 AND kind = 'vist_resubmitted'",
                           handle.id), lambda rows: len(rows) >= 1)
    assert [r["actor_id"] for r in versions] == [OFFICER.id]


async def test_a_workflows_refusal_comes_back_beside_the_field_it_names(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    handle, now = await discussed(time_env, time_queue, sla_policy, pool, 1804, section_47=True, actions=0)
    before = await handle.query(ReferralWorkflow.state)
    assert before.stage is Stage.CONFERENCE
    screener = await sign_in(api, tokens["screener"])
    path = f"/dashboard/referrals/{handle.id}"
    page = (await api.get(path, headers=screener.headers)).text
    assert 'data-form="conference"' in page and 'data-form="conference-outcome"' not in page
    yesterday = written(now - timedelta(days=1))
    refused = await api.post(f"{path}/decisions/conference", headers=screener.headers, data=screener.form(
        idempotency_key=form_key(page, "conference"), conference_at=yesterday, police_attendance="attend"))
    assert refused.status_code == 409
    assert 'id="conference-conference_at-error"' in refused.text and "must be in the future" in refused.text
    assert f'value="{yesterday}"' in refused.text
    # A refused decision was applied to nothing: the corrected form goes as a new decision, under a new key.
    assert form_key(refused.text, "conference") != form_key(page, "conference")
    assert await handle.query(ReferralWorkflow.state) == before


async def test_an_agreed_actions_page_offers_its_owner_completion_and_a_screener_reassignment(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    handle, now = await discussed(time_env, time_queue, sla_policy, pool, 1805, section_47=False, actions=2)
    health, social_care = f"{handle.id}.A1", f"{handle.id}.A2"

    partner = await sign_in(api, tokens["health-partner"])
    assert (await api.get(f"/dashboard/actions/{social_care}", headers=partner.headers)).status_code == 404
    page = (await api.get(f"/dashboard/actions/{health}", headers=partner.headers)).text
    assert 'data-form="completion"' in page and 'data-form="reassignment"' not in page
    assert f'href="/dashboard/referrals/{handle.id}"' not in page  # a partner reads no referral
    done = await api.post(f"/dashboard/actions/{health}/decisions/completion", headers=partner.headers,
                          data=partner.form(idempotency_key=form_key(page, "completion"), note="Synthetic: done."))
    assert done.status_code == 303
    action = await time_env.client.get_workflow_handle(health).query(AgreedActionWorkflow.state)
    assert action.completed_by == "HV-5001"

    screener = await sign_in(api, tokens["screener"])
    page = (await api.get(f"/dashboard/actions/{social_care}", headers=screener.headers)).text
    later = written(now + timedelta(days=9))
    moved = await api.post(f"/dashboard/actions/{social_care}/decisions/reassignment", headers=screener.headers,
                           data=screener.form(idempotency_key=form_key(page, "reassignment"),
                                              **{"owner.agency": "health", "owner.owner": "Health Visitor Synthetic"},
                                              reason="Synthetic: health holds the contact.", deadline=later))
    assert moved.status_code == 303
    action = await time_env.client.get_workflow_handle(social_care).query(AgreedActionWorkflow.state)
    assert action.owner.agency.value == "health" and action.reassignments == 1
    await advance_to(time_env, now + timedelta(minutes=1))


async def test_a_missing_episode_is_traced_found_and_its_interview_recorded_in_the_browser(
    api, tokens, time_env, time_queue, sla_policy
):
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, seed="dashboard:episode-forms")
    path = f"/dashboard/missing/{handle.id}"
    sergeant = await sign_in(api, tokens["sergeant"])
    page = (await api.get(path, headers=sergeant.headers)).text
    assert {'data-form="tracing"', 'data-form="found"', 'data-form="review"'} <= set(re.findall(r'data-form="[a-z-]+"', page))
    assert 'data-form="return-home-interview"' not in page
    traced = await api.post(f"{path}/decisions/tracing", headers=sergeant.headers, data=sergeant.form(
        idempotency_key=form_key(page, "tracing"), activity="cctv_reviewed", note="Synthetic: CCTV at the station."))
    assert traced.status_code == 303
    now = await time_env.get_current_time()
    found = {"found_at": written(now), "where": "relative_or_friend", "how": "found_by_police",
             "safe_and_well": "safe_and_well", "safe_and_well_at": written(now - timedelta(hours=1)),
             "interviewer.agency": "childrens_social_care", "interviewer.owner": "Social Worker Synthetic"}
    # The model's own rule, beside its field: the safe-and-well check cannot come before the finding.
    refused = await api.post(f"{path}/decisions/found", headers=sergeant.headers,
                             data=sergeant.form(idempotency_key=form_key(page, "found"), **found))
    assert refused.status_code == 422 and 'id="found-safe_and_well_at-error"' in refused.text
    assert (await handle.query(MissingEpisodeWorkflow.state)).phase is EpisodePhase.MISSING
    found |= {"safe_and_well_at": written(now), "interviewer.supervisor": "Team Manager Synthetic"}
    done = await api.post(f"{path}/decisions/found", headers=sergeant.headers,
                          data=sergeant.form(idempotency_key=form_key(refused.text, "found"), **found))
    assert done.status_code == 303
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert state.phase is EpisodePhase.RETURNED and state.last_tracing_at is not None

    screener = await sign_in(api, tokens["screener"])
    page = (await api.get(path, headers=screener.headers)).text
    assert re.findall(r'data-form="[a-z-]+"', page) == ['data-form="return-home-interview"']
    held = await api.post(f"{path}/decisions/return-home-interview", headers=screener.headers, data=screener.form(
        idempotency_key=form_key(page, "return-home-interview"), outcome="done", held_at=written(now),
        intelligence_for_police="Synthetic: stayed with a friend."))
    assert held.status_code == 303
    state = await eventually(lambda: handle.query(MissingEpisodeWorkflow.state), lambda s: s.interview_outcome)
    assert state.interview_outcome is InterviewOutcome.DONE


async def test_a_days_triage_decides_on_a_listed_referral_from_the_referrals_page(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    thursday = (await next_local(time_env, weekday=3, hour=9, after_days=3, avoiding=sla_policy.bank_holidays)).date()
    reference = await referral_at(time_env, time_queue, sla_policy, at(thursday - timedelta(days=1), 10), 1806,
                                  risk=RiskGrade.STANDARD)
    await listed_in_read_model(pool, reference)
    triage = await open_triage(time_env, time_queue, sla_policy, at(thursday, 7, 30))
    path = f"/dashboard/referrals/{reference}"
    screener = await sign_in(api, tokens["screener"])
    page = await eventually(lambda: api.get(path, headers=screener.headers),
                            lambda r: 'data-form="triage"' in r.text)
    action = f"{path}/triage/{triage.triage_id}"
    assert f'action="{action}"' in page.text
    # An officer reads the page but is offered no triage form, and is refused one sent anyway.
    officer = await sign_in(api, tokens["officer"])
    assert 'data-form="triage"' not in (await api.get(path, headers=officer.headers)).text
    assert (await api.post(action, headers=officer.headers,
                           data=officer.form(outcome="joint_visit", rationale="Synthetic."))).status_code == 403

    refused = await api.post(action, headers=screener.headers, data=screener.form(
        idempotency_key=form_key(page.text, "triage"), outcome="joint_visit"))
    assert refused.status_code == 422 and 'id="triage-rationale-error"' in refused.text
    decided = await api.post(action, headers=screener.headers, data=screener.form(
        idempotency_key=form_key(refused.text, "triage"), outcome="joint_visit", rationale="Synthetic: two callouts."))
    assert decided.status_code == 303 and decided.headers["location"] == f"{path}?done=triage"
    handle = time_env.client.get_workflow_handle(triage.triage_id)
    item = next(i for i in (await handle.query(DailyTriageWorkflow.state)).items if i.reference == reference)
    assert (item.outcome, item.decided_by) == (TriageOutcome.JOINT_VISIT, "CRU-3001")
    await eventually(lambda: api.get(path, headers=screener.headers), lambda r: 'data-form="triage"' not in r.text)


async def test_a_panels_meeting_is_run_from_its_sittings_page(api, tokens, time_env, time_queue, sla_policy, pool):
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="dashboard:panel")
    await in_read_model(pool, "missing_episodes", "episode_id", episode.id)
    today = (await time_env.get_current_time()).astimezone(LONDON).date()
    sittings = PanelSittings(time_env.client)
    state, _ = await sittings.open(a_panel(criteria=[AgendaCriterion.MEMBER_REFERRAL]), today, sla_policy, time_queue)
    handle = sitting_of(time_env, state.sitting_id)
    await built(handle)
    await sittings.decide(state.sitting_id, AgendaEdit(actor=SCREENER, reason="Synthetic referral.", add=[
        AgendaAddition(case_id=episode.id, referred_by=Agency.CHILDRENS_SOCIAL_CARE)]))
    path = f"/dashboard/panels/{state.sitting_id}"

    async def send(browser, form: str, **fields) -> httpx.Response:
        page = (await api.get(path, headers=browser.headers)).text
        assert f'data-form="{form}"' in page, form
        return await api.post(f"{path}/decisions/{form}", headers=browser.headers,
                              data=browser.form(idempotency_key=form_key(page, form), **fields))

    chair, coordinator = await sign_in(api, tokens["inspector"]), await sign_in(api, tokens["screener"])
    assert 'data-form="meeting"' not in (await api.get(path, headers=coordinator.headers)).text
    assert (await send(chair, "meeting")).status_code == 303
    recorded = await send(coordinator, "attendance", **{
        "attendees.0.name": "CSE Coordinator Synthetic", "attendees.0.agency": "police", "attendees.0.role": "CSE lead",
        "attendees.0.named_role": "cse_team", "absences.0.case_id": episode.id,
        "absences.0.named_role": "allocated_social_worker", "absences.0.reason": "Synthetic: on leave."})
    assert recorded.status_code == 303, recorded.text
    deadline = written(await time_env.get_current_time() + timedelta(days=7))
    decided = await send(chair, "outcomes", grade="high", rationale="Synthetic: exploitation indicators.", **{
        "case_id": episode.id, "agreed_actions.0.description": "Synthetic: disruption visit.",
        "agreed_actions.0.owner.agency": "police", "agreed_actions.0.owner.owner": "DC Synthetic",
        "agreed_actions.0.deadline": deadline})
    assert decided.status_code == 303, decided.text
    # The grade is on the live episode at once, through the decision the sitting forwards.
    live = await eventually(lambda: episode.query(MissingEpisodeWorkflow.state), lambda s: s.grade.value == "high")
    assert live.grade.value == "high"
    assert 'data-form="outcomes"' not in (await api.get(path, headers=chair.headers)).text  # no case left
    assert (await send(chair, "minutes")).status_code == 303
    closed = await handle.query(PanelSittingWorkflow.state)
    assert closed.phase is not SittingPhase.IN_SESSION and [a.name for a in closed.attendees] == ["CSE Coordinator Synthetic"]
    assert closed.agenda[0].decided_by == "INSP-2501" and len(closed.agenda[0].action_ids) == 1


async def test_a_sittings_agenda_is_changed_before_its_meeting_by_its_coordinator(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="dashboard:agenda")
    await in_read_model(pool, "missing_episodes", "episode_id", episode.id)
    today = (await time_env.get_current_time()).astimezone(LONDON).date()
    state, _ = await PanelSittings(time_env.client).open(a_panel(criteria=[AgendaCriterion.MEMBER_REFERRAL]), today,
                                                          sla_policy, time_queue)
    handle = sitting_of(time_env, state.sitting_id)
    await built(handle)
    before = await handle.query(PanelSittingWorkflow.state)
    path = f"/dashboard/panels/{state.sitting_id}"
    officer, coordinator = await sign_in(api, tokens["officer"]), await sign_in(api, tokens["screener"])
    assert 'data-form="agenda"' not in (await api.get(path, headers=officer.headers)).text
    page = (await api.get(path, headers=coordinator.headers)).text
    add = {"add.0.case_id": "MIS-AAAAA-AAAAA", "add.0.referred_by": "childrens_social_care",
           "reason": "Synthetic: referred by social care."}
    # A case the read model does not know is refused beside its field, as the API refuses it; nothing is sent.
    refused = await api.post(f"{path}/decisions/agenda", headers=coordinator.headers,
                             data=coordinator.form(idempotency_key=form_key(page, "agenda"), **add))
    assert refused.status_code == 422 and "no such referral or missing episode" in refused.text
    assert "agenda-add-0-case_id-error" in field(refused.text, "agenda-add-0-case_id")
    assert form_key(refused.text, "agenda") == form_key(page, "agenda")
    assert await handle.query(PanelSittingWorkflow.state) == before
    add["add.0.case_id"] = episode.id
    for _ in range(2):  # sent twice: added once
        added = await api.post(f"{path}/decisions/agenda", headers=coordinator.headers,
                               data=coordinator.form(idempotency_key=form_key(refused.text, "agenda"), **add))
        assert (added.status_code, added.headers["location"]) == (303, f"{path}?done=agenda"), added.text
    listed = await handle.query(PanelSittingWorkflow.state)
    assert [(i.case_id, i.referred_by) for i in listed.agenda] == [(episode.id, Agency.CHILDRENS_SOCIAL_CARE)]
    # Taken off again by ticking it: the box offered is the case on the agenda.
    page = (await api.get(path, headers=coordinator.headers)).text
    assert f'name="remove.0" value="{episode.id}"' in page
    removed = await api.post(f"{path}/decisions/agenda", headers=coordinator.headers, data=coordinator.form(
        idempotency_key=form_key(page, "agenda"), **{"remove.0": episode.id}, reason="Synthetic: withdrawn."))
    assert removed.status_code == 303, removed.text
    assert (await handle.query(PanelSittingWorkflow.state)).agenda == []


async def test_a_call_handler_reports_a_child_missing_on_the_dashboard_once(api, tokens, time_env):
    handler = await sign_in(api, tokens["call-handler"])
    page = (await api.get("/dashboard/report-missing", headers=handler.headers)).text
    report_id = re.search(r'name="report_id" value="([0-9a-f-]{36})"', page).group(1)
    now = await time_env.get_current_time()
    report = {"report_id": report_id, "child.name": "Synthetic Child Missing", "child.date_of_birth": "04/03/2012",
              "missing_since": written(now + timedelta(hours=2)), "assessment.grade": "medium",
              "assessment.indicators.3": "cse_concern", "station": "Testtown", "idempotency_key": form_key(page, "report-missing")}
    refused = await api.post("/dashboard/report-missing", headers=handler.headers, data=handler.form(**report))
    assert refused.status_code == 422 and "is in the future" in refused.text
    assert 'id="report-missing-missing_since-error"' in refused.text and f'value="{report_id}"' in refused.text
    assert 'value="Synthetic Child Missing"' in refused.text  # kept for the person who wrote it, and no one else
    report["missing_since"] = written(now - timedelta(hours=3))
    for _ in range(2):  # sent twice: the same report, the same episode
        sent = await api.post("/dashboard/report-missing", headers=handler.headers, data=handler.form(**report))
        assert sent.status_code == 303 and sent.headers["location"].startswith("/dashboard/report-missing/MIS-")
    episode_id = sent.headers["location"].rsplit("/", 1)[1]
    handle = time_env.client.get_workflow_handle(episode_id)
    STARTED.append(handle)
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert (state.reported_by, state.indicators) == (CALL_HANDLER.id, [RiskIndicator.CSE_CONCERN])
    opened = await api.get(sent.headers["location"], headers=handler.headers)
    assert opened.status_code == 200 and episode_id in opened.text and "Synthetic Child" not in opened.text
    # A partner may not report; the form is not theirs.
    partner = await sign_in(api, tokens["health-partner"])
    assert (await api.get("/dashboard/report-missing", headers=partner.headers)).status_code == 403


async def test_a_trigger_plan_is_written_added_to_revised_and_ended_in_the_browser(api, tokens, time_env):
    worker, officer = await sign_in(api, tokens["social-worker"]), await sign_in(api, tokens["officer"])
    # Children's social care's own form: police are not offered it.
    assert (await api.get("/dashboard/trigger-plan", headers=officer.headers)).status_code == 403
    page = (await api.get("/dashboard/trigger-plan", headers=worker.headers)).text
    now = await time_env.get_current_time()
    plan = {"child.name": "Synthetic Child Planned", "child.date_of_birth": "04/03/2012",
            "plan.owner.agency": "childrens_social_care", "plan.owner.owner": "Social Worker Synthetic",
            "plan.owner.supervisor": "Team Manager Synthetic", "plan.triggers": "Synthetic: rows at home.",
            "plan.police_activity.where_to_look_first": "Synthetic: the retail park.",
            "plan.review_by": written(now - timedelta(days=1)), "idempotency_key": form_key(page, "trigger-plan")}
    refused = await api.post("/dashboard/trigger-plan", headers=worker.headers, data=worker.form(**plan))
    assert refused.status_code == 422 and "must be in the future" in refused.text
    assert "trigger-plan-plan-review_by-error" in field(refused.text, "trigger-plan-plan-review_by")
    plan["plan.review_by"] = written(now + timedelta(days=30))
    for _ in range(2):  # sent twice by its writer: the same plan
        sent = await api.post("/dashboard/trigger-plan", headers=worker.headers, data=worker.form(**plan))
        assert sent.status_code == 303 and sent.headers["location"].startswith("/dashboard/trigger-plan/PLAN-"), sent.text
    plan_id = sent.headers["location"].rsplit("/", 1)[1]
    handle = time_env.client.get_workflow_handle(plan_id)
    STARTED.append(handle)
    opened = (await api.get(sent.headers["location"], headers=worker.headers)).text
    assert f'href="/dashboard/plans/{plan_id}"' in opened and "Synthetic Child Planned" not in opened
    # Another plan for the same child is refused, naming the field: the child's plan is revised, not written again.
    other = await api.post("/dashboard/trigger-plan", headers=worker.headers,
                           data=worker.form(**plan | {"plan.owner.owner": "Another Social Worker Synthetic"}))
    assert other.status_code == 409 and "already has a trigger plan" in other.text
    assert len((await handle.query(TriggerPlanWorkflow.state)).versions) == 1

    path = f"/dashboard/plans/{plan_id}"
    page = (await eventually(lambda: api.get(path, headers=officer.headers),
                             lambda r: 'data-form="police-addendum"' in r.text)).text
    assert re.findall(r'data-form="[a-z-]+"', page) == ['data-form="police-addendum"']
    assert "the retail park" not in page  # the plan's words are read through the API only
    added = await api.post(f"{path}/decisions/police-addendum", headers=officer.headers, data=officer.form(
        idempotency_key=form_key(page, "police-addendum"), information="Synthetic: seen at the station.",
        fold_in="true"))
    assert added.status_code == 303, added.text
    state = await handle.query(TriggerPlanWorkflow.state)
    assert [(a.number, a.added_by) for a in state.addenda] == [(1, "PC-1001")] and len(state.actions) == 1

    page = (await api.get(path, headers=worker.headers)).text
    assert {'data-form="revision"', 'data-form="end"'} == set(re.findall(r'data-form="[a-z-]+"', page))
    assert 'name="folds_in.0" value="1"' in page
    revision = {k: v for k, v in plan.items() if k.startswith("plan.")} | {
        "plan.review_by": written(now + timedelta(days=60)), "folds_in.0": "1",
        "idempotency_key": form_key(page, "revision")}
    revised = await api.post(f"{path}/decisions/revision", headers=worker.headers, data=worker.form(**revision))
    assert revised.status_code == 303, revised.text
    state = await handle.query(TriggerPlanWorkflow.state)
    assert (state.current.version, state.addenda[0].folded_into) == (2, 2)
    # The plan ends only once its actions are done: refused, and why, above the form; then done, then ended.
    page = (await api.get(path, headers=worker.headers)).text
    ending = {"reason": "Synthetic: moved away."}
    early = await api.post(f"{path}/decisions/end", headers=worker.headers,
                           data=worker.form(idempotency_key=form_key(page, "end"), **ending))
    assert early.status_code == 409 and "still open" in early.text
    action = state.actions[0].action_id
    action_page = (await api.get(f"/dashboard/actions/{action}", headers=worker.headers)).text
    completed = await api.post(f"/dashboard/actions/{action}/decisions/completion", headers=worker.headers,
                               data=worker.form(idempotency_key=form_key(action_page, "completion"),
                                                note="Synthetic: folded in."))
    assert completed.status_code == 303, completed.text
    await eventually(lambda: handle.query(TriggerPlanWorkflow.state), lambda s: s.actions[0].completed_at)
    ended = await api.post(f"{path}/decisions/end", headers=worker.headers,
                           data=worker.form(idempotency_key=form_key(early.text, "end"), **ending))
    assert ended.status_code == 303, ended.text
    state = await handle.query(TriggerPlanWorkflow.state)
    assert state.ended_at is not None
    assert re.findall(r'data-form="[a-z-]+"', (await api.get(path, headers=worker.headers)).text) == ['data-form="revision"']


async def test_a_days_triage_is_opened_by_hand_on_the_triage_page_once(api, tokens, time_env, sla_policy):
    today = (await time_env.get_current_time()).astimezone(LONDON).date()
    holidays = frozenset(sla_policy.bank_holidays)
    # A working day long gone, and a weekend day: days no other test's triage is held on.
    past = next(today - timedelta(days=n) for n in range(200, 230) if is_working_day(today - timedelta(days=n), holidays))
    weekend = next(today - timedelta(days=n) for n in range(200, 230) if (today - timedelta(days=n)).weekday() == 6)
    officer, screener = await sign_in(api, tokens["officer"]), await sign_in(api, tokens["screener"])
    assert 'data-form="open-triage"' not in (await api.get("/dashboard/triage", headers=officer.headers)).text
    assert (await api.post("/dashboard/triage/open", headers=officer.headers,
                           data=officer.form(day=past.strftime("%d/%m/%Y")))).status_code == 403
    page = (await api.get("/dashboard/triage", headers=screener.headers)).text
    assert f'value="{today.strftime("%d/%m/%Y")}"' in field(main_of(page), "open-triage-day")
    for day, why in ((today + timedelta(days=1), "cannot be opened before its day"),
                     (weekend, "not a working day"), (None, "a date, written day/month/year")):
        refused = await api.post("/dashboard/triage/open", headers=screener.headers,
                                 data=screener.form(day=day.strftime("%d/%m/%Y") if day else "someday"))
        assert refused.status_code == 422 and why in refused.text, day
        assert "open-triage-day-error" in field(refused.text, "open-triage-day")
    for _ in range(2):  # sent twice: the same day's triage, opened once
        sent = await api.post("/dashboard/triage/open", headers=screener.headers,
                              data=screener.form(day=past.strftime("%d/%m/%Y")))
        assert sent.status_code == 303 and sent.headers["location"] == f"/dashboard/triage?opened=TRIAGE-{past.isoformat()}", sent.text
    triage_id = sent.headers["location"].split("=", 1)[1]
    handle = time_env.client.get_workflow_handle(triage_id)
    STARTED.append(handle)
    assert (await handle.query(DailyTriageWorkflow.state)).day == past
    assert f"Triage {triage_id} is open" in (await api.get(sent.headers["location"], headers=screener.headers)).text


async def test_a_referrals_risk_and_a_missing_episodes_grade_and_review_are_decided_in_the_browser(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    _, referral_handle = await at_screening(time_env, time_queue, sla_policy, pool, 1808)
    screener = await sign_in(api, tokens["screener"])
    path = f"/dashboard/referrals/{referral_handle.id}"
    page = (await api.get(path, headers=screener.headers)).text
    refused = await api.post(f"{path}/decisions/risk", headers=screener.headers,
                             data=screener.form(idempotency_key=form_key(page, "risk"), risk="high"))
    assert refused.status_code == 422 and "risk-reason-error" in field(refused.text, "risk-reason")
    regraded = await api.post(f"{path}/decisions/risk", headers=screener.headers, data=screener.form(
        idempotency_key=form_key(refused.text, "risk"), risk="high", reason="Synthetic: a weapon was seen."))
    assert regraded.status_code == 303, regraded.text
    assert (await referral_handle.query(ReferralWorkflow.state)).risk is RiskGrade.HIGH

    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="dashboard:episode-review")
    path = f"/dashboard/missing/{episode.id}"
    sergeant = await sign_in(api, tokens["sergeant"])
    page = (await api.get(path, headers=sergeant.headers)).text
    reviewed = await api.post(f"{path}/decisions/review", headers=sergeant.headers, data=sergeant.form(
        idempotency_key=form_key(page, "review"), tracing_done="Synthetic: friends called.",
        next_steps="Synthetic: check the station.", grade="high"))
    assert reviewed.status_code == 303, reviewed.text
    page = (await api.get(path, headers=sergeant.headers)).text
    regraded = await api.post(f"{path}/decisions/grade", headers=sergeant.headers, data=sergeant.form(
        idempotency_key=form_key(page, "grade"), grade="medium", reason="Synthetic: seen safe on CCTV."))
    assert regraded.status_code == 303, regraded.text
    state = await episode.query(MissingEpisodeWorkflow.state)
    assert state.grade.value == "medium" and len(state.reviews) == 1


async def test_a_supervisor_decides_in_the_browser_that_childrens_social_care_need_not_be_informed(
    api, tokens, time_env, time_queue, sla_policy, pool
):
    submission, handle = await at_screening(time_env, time_queue, sla_policy, pool, 1809)
    path = f"/dashboard/referrals/{handle.id}"
    screener = await sign_in(api, tokens["screener"])
    page = (await api.get(path, headers=screener.headers)).text
    assert 'data-form="csc-not-informed"' not in page  # a supervisor's decision, not a screener's

    def screening_form(page: str) -> dict[str, str]:
        return screener.form(
            idempotency_key=form_key(page, "screening"), risk="medium", outcome="single_agency",
            rationale="Synthetic screening rationale.", **{"agencies_informed.0": "health"},
            **{f"child_decisions.{i}.child_id": c.child_id for i, c in enumerate(submission.children)},
            **{f"child_decisions.{i}.decision": "single_agency" for i in range(len(submission.children))},
            **{f"child_decisions.{i}.rationale": "Synthetic." for i in range(len(submission.children))},
        )

    # Without the supervisor's decision, a screening that leaves children's social care out is refused beside the field.
    refused = await api.post(f"{path}/decisions/screening", data=screening_form(page), headers=screener.headers)
    assert refused.status_code == 409 and "screening-agencies_informed-error" in field(
        refused.text, "screening-agencies_informed")
    assert (await handle.query(ReferralWorkflow.state)).stage is Stage.SCREENING

    sergeant = await sign_in(api, tokens["sergeant"])
    page = (await api.get(path, headers=sergeant.headers)).text
    empty = await api.post(f"{path}/decisions/csc-not-informed", headers=sergeant.headers,
                           data=sergeant.form(idempotency_key=form_key(page, "csc-not-informed"), rationale=""))
    assert empty.status_code == 422 and "csc-not-informed-rationale-error" in field(
        empty.text, "csc-not-informed-rationale")
    assert (await handle.query(ReferralWorkflow.state)).csc_not_informed is None
    decided = await api.post(f"{path}/decisions/csc-not-informed", headers=sergeant.headers, data=sergeant.form(
        idempotency_key=form_key(empty.text, "csc-not-informed"), rationale="Synthetic: the agency opened this case."))
    assert decided.status_code == 303, decided.text
    state = await handle.query(ReferralWorkflow.state)
    assert state.csc_not_informed is not None and state.csc_not_informed.decided_by == SERGEANT.id
    # Decided once: the form is no longer offered, and the screener's form says why the agency may be left out.
    assert 'data-form="csc-not-informed"' not in (await api.get(path, headers=sergeant.headers)).text
    page = (await api.get(path, headers=screener.headers)).text
    assert "Synthetic: the agency opened this case." in page
    screened = await api.post(f"{path}/decisions/screening", data=screening_form(page), headers=screener.headers)
    assert screened.status_code == 303, screened.text
    assert (await handle.query(ReferralWorkflow.state)).stage is not Stage.SCREENING


async def test_a_low_grade_the_indicators_make_implausible_is_kept_in_the_browser_by_another_supervisor(
    api, tokens, time_env, time_queue, sla_policy
):
    report = synthetic_missing_report(
        rng=seeded("dashboard:implausible-low"), grade=MissingGrade.LOW, indicators=[RiskIndicator.CSE_CONCERN])
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, report, reported_by=SERGEANT)
    path = f"/dashboard/missing/{episode.id}"
    # The supervisor who reported it is offered the form by role, and refused by the workflow: not their own grade.
    sergeant = await sign_in(api, tokens["sergeant"])
    page = (await api.get(path, headers=sergeant.headers)).text
    assert 'data-form="low-grade"' in page
    before = await episode.query(MissingEpisodeWorkflow.state)
    own = await api.post(f"{path}/decisions/low-grade", headers=sergeant.headers, data=sergeant.form(
        idempotency_key=form_key(page, "low-grade"), keep_low="true", rationale="Synthetic rationale."))
    assert own.status_code == 403 and "Not recorded" in own.text, own.text
    assert await episode.query(MissingEpisodeWorkflow.state) == before

    inspector = await sign_in(api, tokens["inspector"])
    page = (await api.get(path, headers=inspector.headers)).text
    unexplained = await api.post(f"{path}/decisions/low-grade", headers=inspector.headers, data=inspector.form(
        idempotency_key=form_key(page, "low-grade"), keep_low="true"))
    assert unexplained.status_code == 422 and "low-grade-rationale-error" in field(
        unexplained.text, "low-grade-rationale")
    kept = await api.post(f"{path}/decisions/low-grade", headers=inspector.headers, data=inspector.form(
        idempotency_key=form_key(page, "low-grade"), keep_low="true", rationale="Synthetic: seen safe at school."))
    assert kept.status_code == 303, kept.text
    state = await episode.query(MissingEpisodeWorkflow.state)
    assert (state.grade, state.low_grade_pending) == (MissingGrade.LOW, False)
    assert 'data-form="low-grade"' not in (await api.get(path, headers=inspector.headers)).text


def test_every_decision_the_api_takes_on_a_case_has_a_form_for_the_same_roles():
    from api.routes.decisions import DECISION_ROUTES
    from dashboard.pages.decisions import ACTION_FORMS, EPISODE_FORMS, PLAN_FORMS, REFERRAL_FORMS, SITTING_FORMS

    forms = {form.decision: form for table in (REFERRAL_FORMS, ACTION_FORMS, EPISODE_FORMS, SITTING_FORMS, PLAN_FORMS)
             for form in table.values()}
    missing = [route.path for route in DECISION_ROUTES if route.decision not in forms]
    assert not missing, f"decisions the API takes with no form in the browser: {missing}"
    differing = [route.path for route in DECISION_ROUTES if forms[route.decision].roles != route.roles]
    assert not differing, f"forms offered to other roles than the API's: {differing}"

"""The dashboard in headless Chromium: a supervisor signs in, sees an escalation, acknowledges it; each page's roles."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from activities.alerts import AlertLinks
from runtime.settings import Settings
from auth.tokens import Authenticator
from starter.demo_users import ensure_demo_tokens
from api.app import create_app
from dashboard.routes import COOKIE
from starter.synthetic import (
    CSC_PARTNER,
    synthetic_trigger_plan,
    HEALTH_PARTNER,
    approval,
    found_report,
    screening,
    strategy_discussion,
    synthetic_missing_report,
    synthetic_vist,
)
from tests.helpers import (
    advance_to, eventually, main_of, screened_and_told, sign_in, start_episode, start_plan, start_referral, state_when,
)
from workflows.missing_models import RiskIndicator
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import PlanRevision
from workflows.missing import MissingEpisodeWorkflow
from tests.local_servers import free_port, serving
from workflows.action import AgreedActionWorkflow
from workflows.models import ActionCompletion, MissingGrade, ScreeningOutcome, Stage
from workflows.referral import ReferralWorkflow

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / ".data" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def dashboard_settings(settings: Settings, tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("dashboard")
    return settings.model_copy(update={"api_tokens_file": folder / "tokens.json", "data_dir": folder})


@pytest.fixture(scope="module")
def tokens(dashboard_settings: Settings) -> dict[str, str]:
    """The embedded default's static tokens: one per demo user."""
    return ensure_demo_tokens(dashboard_settings.tokens_file)


@pytest.fixture(scope="module")
def dashboard_app(time_env, pool, time_queue, dashboard_settings, sla_policy, tokens) -> FastAPI:
    """The API app, which serves the dashboard under /dashboard, reading "now" from the test server's clock."""
    return create_app(
        time_env.client,
        pool,
        dashboard_settings.model_copy(update={"task_queue": time_queue}),
        authenticator=Authenticator.from_settings(dashboard_settings),
        sla_policy=sla_policy,
        clock=time_env.get_current_time,
    )


@pytest.fixture
async def browser_as() -> AsyncIterator:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run deploy/ensure-chromium.sh")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def overdue_referrals(time_env, time_queue, sla_policy):
    """Three referrals over four days, decided hours apart as in a referral unit: one still at supervisor
    review (three rungs raised), one with an overdue and a due-soon agreed action, one closed at screening."""
    start = await time_env.get_current_time()
    with_actions, actions_handle = await start_referral(time_env.client, time_queue, sla_policy, seed=701)
    closed, closed_handle = await start_referral(time_env.client, time_queue, sla_policy, seed=702)
    _, late_handle = await start_referral(time_env.client, time_queue, sla_policy, seed=703)

    await advance_to(time_env, start + timedelta(hours=3))
    await actions_handle.execute_update(ReferralWorkflow.review, approval())
    await advance_to(time_env, start + timedelta(hours=5))
    await closed_handle.execute_update(ReferralWorkflow.review, approval())
    await advance_to(time_env, start + timedelta(hours=9))
    await actions_handle.execute_update(
        ReferralWorkflow.screen, screening(with_actions, ScreeningOutcome.STRATEGY_DISCUSSION)
    )
    await screened_and_told(time_env.client, closed_handle, screening(closed, ScreeningOutcome.EARLY_HELP))
    await advance_to(time_env, start + timedelta(hours=20))
    held_at = await time_env.get_current_time()
    await actions_handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=2)
    )

    await advance_to(time_env, held_at + timedelta(days=3, hours=1))
    await state_when(late_handle, lambda s: len(s.escalations) == 3)
    await state_when(actions_handle, lambda s: len(s.actions[0].escalations) == 1)
    return late_handle, actions_handle


async def in_app_alerts_shown(pool, reference: str, count: int) -> None:
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM alert_deliveries WHERE reference = $1 AND channel = 'in_app' "
            "AND delivered_at IS NOT NULL",
            reference,
        ),
        lambda n: n == count,
    )


async def test_a_supervisor_signs_in_sees_an_escalation_and_acknowledges_it(
    time_env, pool, time_queue, sla_policy, dashboard_app, tokens, browser_as
):
    late, with_actions = await overdue_referrals(time_env, time_queue, sla_policy)
    await in_app_alerts_shown(pool, late.id, 3)
    first = (await late.query(ReferralWorkflow.state)).escalations[0]

    async with serving(dashboard_app, free_port()) as base:
        page = await browser_as.new_page(viewport={"width": 1280, "height": 860})
        await page.goto(f"{base}/dashboard/escalations")
        assert page.url.startswith(f"{base}/dashboard/login")
        await screenshot(page, "01-sign-in")
        await page.fill("#token", tokens["sergeant"])
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/dashboard/escalations")
        cookie = next(c for c in await page.context.cookies() if c["name"] == COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        row = page.locator(f"tr[data-escalation='{first.escalation_id}']")
        assert "supervisor review" in await row.inner_text()
        assert await page.locator(f"tr[data-escalation^='{late.id}.']").count() == 3
        # Another agency's late action is not the sergeant's to acknowledge.
        assert await page.locator(f"tr[data-escalation^='{with_actions.id}.']").count() == 0
        await screenshot(page, "02-my-escalations")

        await row.get_by_role("button", name="Acknowledge").click()
        await page.wait_for_url(f"{base}/dashboard/escalations?acknowledged=*")
        assert f"Acknowledged {first.escalation_id}" in await page.locator(".notice").inner_text()
        assert await page.locator(f"tr[data-escalation='{first.escalation_id}']").count() == 0
        await screenshot(page, "03-acknowledged")

        for name in ("actions", "referrals", "timeliness"):
            await page.goto(f"{base}/dashboard/{name}")
            await screenshot(page, f"04-{name}")
        assert await page.locator("svg.chart").count() >= 4
        await page.goto(f"{base}/dashboard/actions")
        assert await page.locator(f"tr[data-action='{with_actions.id}.A1'] .late").count() == 1
        await page.goto(f"{base}/dashboard/referrals/{late.id}")
        assert await page.locator("svg.timeline").count() == 1
        await screenshot(page, "05-referral-late")
        await page.goto(f"{base}/dashboard/referrals/{with_actions.id}")
        assert "Health Visitor Synthetic" in await page.locator("main").inner_text()  # an attendee
        await screenshot(page, "06-referral-with-actions")

    # The workflow and the read model both hold the acknowledgement, by the signed-in sergeant.
    state = await late.query(ReferralWorkflow.state)
    assert state.escalations[0].acknowledged_by == "PS-2001"
    row = await pool.fetchrow("SELECT acknowledged_by, acknowledged_at FROM escalations WHERE escalation_id = $1",
                              first.escalation_id)
    assert row["acknowledged_by"] == "PS-2001" and row["acknowledged_at"] is not None
    access = await pool.fetchrow(
        "SELECT actor_id, channel, action FROM access_log WHERE reference = $1 ORDER BY id DESC LIMIT 1", late.id
    )
    assert tuple(access) == ("PS-2001", "dashboard", "read_referral")


@pytest.fixture
async def dashboard(dashboard_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=dashboard_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard.test", timeout=60) as client:
        yield client


async def signed_in(dashboard: httpx.AsyncClient, tokens: dict[str, str], user: str) -> dict[str, str]:
    """The headers of a browser holding the session cookie `user` got by signing in."""
    return (await sign_in(dashboard, tokens[user])).headers


async def test_each_role_sees_only_its_pages(dashboard, tokens, time_env, time_queue, sla_policy, pool):
    start = await time_env.get_current_time()
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=711)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(start, section_47=False, actions=3)
    )
    await advance_to(time_env, start + timedelta(days=5, hours=1))  # all three actions overdue
    state = await state_when(handle, lambda s: all(a.escalations for a in s.actions))
    assert state.stage is Stage.ACTIONS

    # Not signed in: every page sends to sign-in, keeping where it was going.
    response = await dashboard.get(f"/dashboard/referrals/{handle.id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/login?next=/dashboard/referrals/{handle.id}"
    # An unknown token is refused; a sign-in never redirects off the site.
    bad = await dashboard.post("/dashboard/login", data={"token": "not-a-token", "next": "/dashboard/"})
    assert bad.status_code == 401 and COOKIE not in bad.cookies
    good = await dashboard.post("/dashboard/login", data={"token": tokens["auditor"], "next": "https://elsewhere.example/"})
    assert (good.status_code, good.headers["location"]) == (303, "/dashboard/")
    dashboard.cookies.clear()

    # A health partner sees health's actions only, and no referral.
    partner = await signed_in(dashboard, tokens, "health-partner")
    actions = await dashboard.get("/dashboard/actions", headers=partner)
    assert f"{handle.id}.A1" in actions.text  # owned by health
    assert f"{handle.id}.A2" not in actions.text and f"{handle.id}.A3" not in actions.text
    assert (await dashboard.get(f"/dashboard/referrals/{handle.id}", headers=partner)).status_code == 403
    assert (await dashboard.get("/dashboard/escalations", headers=partner)).status_code == 403

    # An auditor reads every open escalation, with nothing to acknowledge, and the timeliness figures.
    auditor_browser = await sign_in(dashboard, tokens["auditor"])
    auditor = auditor_browser.headers
    escalations = await dashboard.get("/dashboard/escalations", headers=auditor)
    assert f"{handle.id}.A1.E1" in escalations.text and 'type="submit">Acknowledge' not in escalations.text
    timeliness = await dashboard.get("/dashboard/timeliness", headers=auditor)
    assert timeliness.status_code == 200 and timeliness.text.count("<svg") >= 4
    refused = await dashboard.post(f"/dashboard/escalations/{handle.id}.A1.E1/acknowledge",
                                   data=auditor_browser.form(), headers=auditor)
    # Refused for the auditor's role, the form being this session's own.
    assert refused.status_code == 403 and "actor.role" in refused.text

    # Once its action is done, an escalation no longer waits on anyone.
    await time_env.client.get_workflow_handle(f"{handle.id}.A1").execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Synthetic: done.")
    )
    escalations = await dashboard.get("/dashboard/escalations", headers=auditor)
    assert f"{handle.id}.A1.E1" not in escalations.text and f"{handle.id}.A2.E1" in escalations.text

    # Reading a referral's page is logged; the page shows no child's name, address or date of birth.
    before = await pool.fetchval("SELECT count(*) FROM access_log WHERE reference = $1", handle.id)
    page = await dashboard.get(f"/dashboard/referrals/{handle.id}", headers=auditor)
    assert page.status_code == 200 and "Synthetic action 1" in page.text
    assert await pool.fetchval("SELECT count(*) FROM access_log WHERE reference = $1", handle.id) == before + 1
    for child in submission.children:
        assert child.name not in page.text and child.home_address not in page.text
        assert child.date_of_birth.strftime("%d %b %Y") not in page.text
    assert submission.incident.location not in page.text


async def test_an_emails_signed_link_acknowledges_after_sign_in(
    dashboard, tokens, dashboard_settings, time_env, time_queue, sla_policy, pool
):
    start = await time_env.get_current_time()
    _, handle = await start_referral(time_env.client, time_queue, sla_policy,
                                     submission=synthetic_vist(rng=random.Random(721)))
    await advance_to(time_env, start + timedelta(hours=24, minutes=1))
    escalation = (await state_when(handle, lambda s: len(s.escalations) == 1)).escalations[0]
    links = AlertLinks.from_settings(dashboard_settings)
    link = links.acknowledge(escalation.escalation_id, datetime.now(timezone.utc)).removeprefix(links.base_url)
    path = f"/dashboard{link}"

    # Opened from the email: sign in first, then back to the link.
    response = await dashboard.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login?next=")
    browser = await sign_in(dashboard, tokens["sergeant"])
    sergeant = browser.headers
    confirm = await dashboard.get(path, headers=sergeant)
    assert confirm.status_code == 200 and f"Acknowledge {escalation.escalation_id}" in confirm.text
    # A tampered or expired link is refused; nothing is acknowledged by opening a link.
    tampered = await dashboard.get(path.replace("sig=", "sig=x"), headers=sergeant)
    assert tampered.status_code == 404
    assert (await handle.query(ReferralWorkflow.state)).escalations[0].acknowledged_at is None

    # The form carries its own idempotency key: the same form sent twice (a double click) acknowledges once.
    form = browser.form(idempotency_key=re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', confirm.text).group(1))
    acknowledge = f"/dashboard/escalations/{escalation.escalation_id}/acknowledge"
    done = await dashboard.post(acknowledge, data=form, headers=sergeant)
    assert done.status_code == 303
    assert (await handle.query(ReferralWorkflow.state)).escalations[0].acknowledged_by == "PS-2001"
    assert (await dashboard.post(acknowledge, data=form, headers=sergeant)).status_code == 303
    acknowledgements = await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1 "
                              "AND kind = 'escalation_acknowledged'", handle.id),
        lambda n: n >= 1,
    )
    assert acknowledgements == 1
    # A new acknowledgement of it is a rejection from the workflow, shown on the page.
    again = await dashboard.post(acknowledge, data=browser.form(), headers=sergeant)
    assert again.status_code == 409 and "already acknowledged" in again.text
    # A post from another site is refused, even with the cookie.
    foreign = await dashboard.post(f"/dashboard/escalations/{escalation.escalation_id}/acknowledge",
                                   data=browser.form(), headers=sergeant | {"Origin": "https://elsewhere.example"})
    assert foreign.status_code == 403


async def test_the_missing_children_page_lists_open_episodes_and_their_late_reviews_reach_the_escalations(
    dashboard, tokens, time_env, time_queue, sla_policy, pool
):
    report = synthetic_missing_report(rng=random.Random("dashboard:missing"), grade=MissingGrade.HIGH)
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
    state = await handle.query(MissingEpisodeWorkflow.state)
    await advance_to(time_env, state.review_due + timedelta(minutes=1))
    escalation = (await eventually(lambda: handle.query(MissingEpisodeWorkflow.state),
                                   lambda s: any(e.subject == "review" for e in s.escalations))).escalations[0]
    await in_app_alerts_shown(pool, handle.id, len((await handle.query(MissingEpisodeWorkflow.state)).escalations))

    sergeant = await signed_in(dashboard, tokens, "sergeant")
    page = await eventually(lambda: dashboard.get("/dashboard/missing", headers=sergeant),
                            lambda r: f'data-episode="{handle.id}"' in r.text)
    row = re.search(rf'<tr id="{handle.id}".*?</tr>', page.text, re.DOTALL).group()
    assert "late by" in row and ">high<" in row and report.child.name not in page.text
    escalations = await dashboard.get("/dashboard/escalations", headers=sergeant)
    assert f'href="/dashboard/missing/{handle.id}"' in escalations.text
    assert "review of a missing child&#39;s episode" in escalations.text or "review of a missing child's episode" in escalations.text
    assert escalation.escalation_id in escalations.text
    assert (await dashboard.get("/dashboard/missing", headers=await signed_in(dashboard, tokens, "health-partner"))).status_code == 403

    # Found: the episode moves to those awaiting the return-home interview, and its review alerts are moot.
    await handle.execute_update(MissingEpisodeWorkflow.found, found_report(await time_env.get_current_time()))
    page = await eventually(lambda: dashboard.get("/dashboard/missing", headers=sergeant),
                            lambda r: "awaited" in r.text and f'data-episode="{handle.id}"' in r.text)
    assert "left" in re.search(rf'<tr id="{handle.id}".*?</tr>', page.text, re.DOTALL).group()
    escalations = await dashboard.get("/dashboard/escalations", headers=sergeant)
    assert escalation.escalation_id not in escalations.text


async def test_the_missing_children_page_lists_the_most_frequently_missing_to_supervisors_only(
    dashboard, tokens, time_env, time_queue, sla_policy
):
    first = synthetic_missing_report(rng=random.Random("dashboard:frequent"))
    for report in [first] + [first.model_copy(update={"report_id": uuid.uuid4()}) for _ in range(2)]:
        _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
    sergeant = await signed_in(dashboard, tokens, "sergeant")
    page = await eventually(lambda: dashboard.get("/dashboard/missing", headers=sergeant),
                            lambda r: f'<tr data-episode="{handle.id}">' in r.text)
    row = re.search(rf'<tr data-episode="{handle.id}">.*?</tr>', main_of(page.text), re.DOTALL).group()
    assert "<td>3</td>" in row and "repeat" in row and first.child.name not in page.text
    officer = await dashboard.get("/dashboard/missing", headers=await signed_in(dashboard, tokens, "officer"))
    assert officer.status_code == 200 and "Most frequently missing" not in officer.text


def row_of(page: str, row_id: str) -> str:
    """A table's row by its ID, or nothing while the page does not list it yet."""
    row = re.search(rf'<tr id="{row_id}".*?</tr>', page, re.DOTALL)
    return row.group() if row else ""


async def test_the_missing_children_page_shows_each_episodes_trigger_plan_and_the_plans_due_for_review(
    dashboard, tokens, time_env, time_queue, sla_policy, pool
):
    sergeant = await signed_in(dashboard, tokens, "sergeant")
    with_plan = synthetic_missing_report(rng=random.Random("dashboard:plan"), indicators=[RiskIndicator.CSE_CONCERN])
    now = await time_env.get_current_time()
    plan = await start_plan(time_env.client, time_queue, sla_policy, with_plan.child,
                            synthetic_trigger_plan(now + timedelta(days=3)))
    await eventually(lambda: pool.fetchval("SELECT version FROM trigger_plans WHERE plan_id = $1", plan.id),
                     lambda v: v == 1)
    _, shown = await start_episode(time_env.client, time_queue, sla_policy, with_plan)
    without = synthetic_missing_report(rng=random.Random("dashboard:no-plan"), indicators=[RiskIndicator.CSE_CONCERN])
    _, required = await start_episode(time_env.client, time_queue, sla_policy, without)

    page = await eventually(
        lambda: dashboard.get("/dashboard/missing", headers=sergeant),
        lambda r: f'data-plan="{plan.id}"><a href="/dashboard/plans/{plan.id}">{plan.id} v1</a><' in r.text
        and "none: required" in row_of(r.text, required.id),
    )
    due = re.search(rf'<tr id="{plan.id}" data-plan="{plan.id}">.*?</tr>', page.text, re.DOTALL).group()
    assert "Team Manager Synthetic" in due and "left" in due
    # IDs, owners and dates only: neither the child nor the plan's text.
    assert with_plan.child.name not in page.text and "retail park" not in page.text

    # Past its review date, the plan's escalation is in the inbox, linked to its page, until a new version.
    await advance_to(time_env, now + timedelta(days=3, minutes=1))
    state = await eventually(lambda: plan.query(TriggerPlanWorkflow.state), lambda s: len(s.escalations) == 1)
    admin = await signed_in(dashboard, tokens, "admin")
    inbox = await eventually(lambda: dashboard.get("/dashboard/escalations", headers=admin),
                             lambda r: state.escalations[0].escalation_id in r.text)
    assert f'href="/dashboard/plans/{plan.id}"' in inbox.text
    later = await time_env.get_current_time()
    await plan.execute_update(TriggerPlanWorkflow.revise,
                              PlanRevision(actor=CSC_PARTNER, plan=synthetic_trigger_plan(later + timedelta(days=30))))
    await eventually(lambda: dashboard.get("/dashboard/escalations", headers=admin),
                     lambda r: state.escalations[0].escalation_id not in r.text)

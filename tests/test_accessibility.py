"""Every dashboard page and the audit report, in headless Chromium: no axe-core violation, and usable at 390 px.

The pages are every GET route of the dashboard's routers (dashboard.routes.PAGES), so a page added later is
checked without a line here: a route whose path names something this test has no case of fails until one is
given. Each page is read as every kind of user (each sees other forms, or the refusal page), and a refused form is
checked as it comes back with its errors beside their fields. axe-core's script comes from the
`axe-playwright-python` package (its vendored axe.min.js); Playwright drives Debian's chromium. Screenshots at
1280 and 390 px go to .data/screenshots (the ones in docs/images/ were taken so).
"""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta

from axe_playwright_python.async_playwright import Axe
from fastapi.routing import APIRoute
from playwright.async_api import Page

from dashboard.routes import PAGES
from starter.panels import PanelSittings
from starter.synthetic import SCREENER, synthetic_missing_report, synthetic_trigger_plan
from tests.helpers import eventually, start_episode, start_plan
from tests.local_servers import free_port, serving
from tests.test_dashboard import (  # noqa: F401
    SCREENSHOTS,
    browser_as,
    dashboard_app,
    dashboard_settings,
    in_app_alerts_shown,
    overdue_referrals,
    screenshot,
    tokens,
)
from tests.test_panels import a_panel, built, in_read_model, sitting_of
from workflows.missing_models import RiskIndicator
from workflows.models import Agency
from workflows.panel_models import AgendaAddition, AgendaCriterion, AgendaEdit
from workflows.referral import ReferralWorkflow

WIDTHS = (1280, 390)
# Everyone who signs in: each is offered other forms on the same page, or shown the refusal page.
USERS = ("sergeant", "officer", "screener", "social-worker", "auditor")
PARAMETER = re.compile(r"{(\w+)}")


def dashboard_pages(cases: dict[str | tuple[str, str], str]) -> dict[str, str]:
    """Every page the dashboard's routers serve to a GET, each path's parameters filled from `cases`: by the route's
    path and the parameter's name, else by the name alone."""
    pages = {}
    for module in PAGES:
        for route in module.router.routes:
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            filled = {name: cases.get((route.path, name), cases.get(name)) for name in PARAMETER.findall(route.path)}
            missing = sorted(name for name, value in filled.items() if value is None)
            assert not missing, f"{route.path}: give this test a case for {missing} so the page is checked"
            pages[route.path] = PARAMETER.sub(lambda m: filled[m.group(1)], route.path)
    return pages


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{base}/dashboard/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)


async def violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it stands, each with the elements it names."""
    results = await Axe().run(page)
    assert results.response["passes"], "axe-core ran no check at all"
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
            for v in results.response["violations"]]


async def overflow(page: Page) -> list[str]:
    """Nothing runs off the side of the screen: only a table's or a chart's own container scrolls."""
    fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return [] if fits else ["the page is wider than the screen"]


async def cases_to_show(time_env, pool, time_queue, sla_policy) -> tuple[dict, list[str]]:
    """A case of everything a page's path names (a referral, an escalation, an action, an episode, a sitting, a
    trigger plan), and
    further pages of other states: a late referral, one with agreed actions."""
    late, with_actions = await overdue_referrals(time_env, time_queue, sla_policy)
    await in_app_alerts_shown(pool, late.id, 3)
    escalation = (await late.query(ReferralWorkflow.state)).escalations[0]
    action = (await with_actions.query(ReferralWorkflow.state)).actions[0]
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="accessibility:episode")
    await in_read_model(pool, "missing_episodes", "episode_id", episode.id)
    now = await time_env.get_current_time()
    sittings = PanelSittings(time_env.client)
    sitting, _ = await sittings.open(a_panel(criteria=[AgendaCriterion.MEMBER_REFERRAL]), now.date(), sla_policy,
                                     time_queue)
    await built(sitting_of(time_env, sitting.sitting_id))
    await sittings.decide(sitting.sitting_id, AgendaEdit(actor=SCREENER, reason="Synthetic referral.", add=[
        AgendaAddition(case_id=episode.id, referred_by=Agency.CHILDRENS_SOCIAL_CARE)]))
    child = synthetic_missing_report(rng=random.Random("accessibility:plan"), indicators=[RiskIndicator.CSE_CONCERN]).child
    plan = await start_plan(time_env.client, time_queue, sla_policy, child, synthetic_trigger_plan(now + timedelta(days=3)))
    await eventually(lambda: pool.fetchval("SELECT version FROM trigger_plans WHERE plan_id = $1", plan.id),
                     lambda version: version == 1)
    cases = {"reference": late.id, "escalation_id": escalation.escalation_id, "action_id": action.action_id,
             "episode_id": episode.id, "sitting_id": sitting.sitting_id,
             # The page a form that opens a case ends on: the case it opened.
             "plan_id": plan.id,
             ("/dashboard/vist/{case_id}", "case_id"): late.id,
             ("/dashboard/partner-referral/{case_id}", "case_id"): late.id,
             ("/dashboard/report-missing/{case_id}", "case_id"): episode.id,
             ("/dashboard/trigger-plan/{case_id}", "case_id"): plan.id}
    return cases, [f"/dashboard/referrals/{with_actions.id}"]


async def title_markup(page) -> list[str]:
    """A page's title as a screen reader and the tab read it: plain words, never a template's markup."""
    title = await page.title()
    return [f"document-title: markup in {title[:40]!r}"] if "<" in title or "{" in title else []


async def test_every_page_passes_axe_and_fits_a_phone(
    time_env, pool, time_queue, sla_policy, dashboard_app, tokens, browser_as  # noqa: F811
):
    cases, more = await cases_to_show(time_env, pool, time_queue, sla_policy)
    paths = list(dashboard_pages(cases).values()) + more
    assert {"/dashboard/login", "/dashboard/vist", "/dashboard/report-missing", f"/dashboard/missing/{cases['episode_id']}",
            f"/dashboard/panels/{cases['sitting_id']}", "/dashboard/triage"} <= set(paths)
    found: dict[str, list[str]] = {}
    async with serving(dashboard_app, free_port()) as base:
        page = await browser_as.new_page(viewport={"width": 1280, "height": 860})
        for user in USERS:
            await sign_in(page, base, tokens[user])
            for width in WIDTHS:
                await page.set_viewport_size({"width": width, "height": 860})
                for path in paths:
                    await page.goto(f"{base}{path}")
                    name = f"{user} {path}@{width}"
                    # axe at both widths for one user, at the wide one for the rest; the fit for everyone.
                    checked = await violations(page) if width == 1280 or user == USERS[0] else []
                    found[name] = checked + await overflow(page) + await title_markup(page)
                    if user in ("sergeant", "officer"):
                        await screenshot(page, f"a11y-{width}-{user}-{path.strip('/').replace('/', '-')}")
        # A refused form comes back with each error beside its field: each form that opens a case, sent empty.
        await sign_in(page, base, tokens["officer"])
        for form in ("vist", "report-missing"):
            for width in WIDTHS:
                await page.set_viewport_size({"width": width, "height": 860})
                await page.goto(f"{base}/dashboard/{form}")
                await page.click("main form button[type=submit]")
                await page.wait_for_selector(".field-error")
                found[f"officer refused {form}@{width}"] = await violations(page) + await overflow(page)
                await screenshot(page, f"a11y-{width}-officer-{form}-refused")
        await page.context.clear_cookies()
        await page.goto(f"{base}/dashboard/login")
        found["signed out /dashboard/login"] = await violations(page) + await overflow(page)
        # The check itself sees a fault: a button without a name, put on a page that passed.
        await page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<button></button>')")
        assert any(v.startswith("button-name") for v in await violations(page))
        # The audit report (HTML), as an auditor's client fetches it with a bearer token.
        auditor = await browser_as.new_page(viewport={"width": 1280, "height": 860},
                                             extra_http_headers={"Authorization": f"Bearer {tokens['auditor']}"})
        for case in (cases["reference"], more[0].rpartition("/")[2], cases["episode_id"]):
            for width in WIDTHS:
                await auditor.set_viewport_size({"width": width, "height": 860})
                response = await auditor.goto(f"{base}/audit/referrals/{case}/timeline?format=html")
                assert response.status == 200, await response.text()
                found[f"audit report {case}@{width}"] = await violations(auditor) + await overflow(auditor)
                await screenshot(auditor, f"a11y-{width}-audit-report-{case}")
    # The whole finding beside the screenshots, for whoever mends a page.
    (SCREENSHOTS / "axe.json").write_text(json.dumps(found, indent=1))
    assert {page: v for page, v in found.items() if v} == {}

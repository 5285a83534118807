"""Every dashboard page and the audit report, in headless Chromium: no axe-core violation, and usable at 390 px.

axe-core's script comes from the `axe-playwright-python` package (its vendored axe.min.js);
Playwright drives Debian's chromium. Screenshots at 1280 and 390 px go to .data/screenshots
(the ones in docs/images/ were taken so).
"""

from __future__ import annotations

import json

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

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
from workflows.referral import ReferralWorkflow

WIDTHS = (1280, 390)


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/dashboard/login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/login" not in url)


async def violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it stands, each with the elements it names."""
    results = await Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
            for v in results.response["violations"]]


async def overflow(page: Page) -> list[str]:
    """Nothing runs off the side of the screen: only a table's or a chart's own container scrolls."""
    fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return [] if fits else ["the page is wider than the screen"]


async def test_every_page_passes_axe_and_fits_a_phone(
    time_env, pool, time_queue, sla_policy, dashboard_app, tokens, browser_as  # noqa: F811
):
    late, with_actions = await overdue_referrals(time_env, time_queue, sla_policy)
    await in_app_alerts_shown(pool, late.id, 3)
    first = (await late.query(ReferralWorkflow.state)).escalations[0]
    pages = {
        "escalations": "/dashboard/escalations",
        "acknowledge": f"/dashboard/escalations/{first.escalation_id}/acknowledge",
        "actions": "/dashboard/actions",
        "referrals": "/dashboard/referrals",
        "referral-late": f"/dashboard/referrals/{late.id}",
        "referral-with-actions": f"/dashboard/referrals/{with_actions.id}",
        "triage": "/dashboard/triage",
        "missing": "/dashboard/missing",
        "panels": "/dashboard/panels",
        "timeliness": "/dashboard/timeliness",
    }
    found: dict[str, list[str]] = {}
    async with serving(dashboard_app, free_port()) as base:
        for width in WIDTHS:
            page = await browser_as.new_page(viewport={"width": width, "height": 860})
            await page.goto(f"{base}/dashboard/login")
            found[f"login@{width}"] = await violations(page) + await overflow(page)
            await screenshot(page, f"a11y-{width}-login")
            await sign_in(page, base, tokens["sergeant"])
            for name, path in pages.items():
                await page.goto(f"{base}{path}")
                found[f"{name}@{width}"] = await violations(page) + await overflow(page)
                await screenshot(page, f"a11y-{width}-{name}")
            await page.close()
        # The audit report (HTML), as an auditor's client fetches it with a bearer token.
        auditor = await browser_as.new_page(viewport={"width": 1280, "height": 860},
                                             extra_http_headers={"Authorization": f"Bearer {tokens['auditor']}"})
        for width in WIDTHS:
            await auditor.set_viewport_size({"width": width, "height": 860})
            await auditor.goto(f"{base}/audit/referrals/{with_actions.id}/timeline?format=html")
            found[f"audit-report@{width}"] = await violations(auditor) + await overflow(auditor)
            await screenshot(auditor, f"a11y-{width}-audit-report")
    # The whole finding beside the screenshots, for whoever mends a page.
    (SCREENSHOTS / "axe.json").write_text(json.dumps(found, indent=1))
    assert {page: v for page, v in found.items() if v} == {}

"""The Temporal Web UI of `make run`, in headless Chromium: it shows a referral's decoded input to an auditor signed in
on the dashboard, and ciphertext to a browser not signed in, signed in as anyone else, or signed out."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page
from temporalio.client import Client

from starter.demo_users import DEMO_USERS
from tests.faults.ledger import Ledger, Referrals
from tests.faults.running_stack import CONDITION_TIMEOUT, RunningStack, running
from tests.test_dashboard import browser_as, screenshot  # noqa: F401 - browser_as is the shared Chromium fixture

# docs/images/web-ui-*.png are this test's screenshots (in .data/screenshots/).
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with running() as stack:
        yield stack


@pytest.fixture(scope="module")
async def referral(stack: RunningStack) -> tuple[str, str, str]:
    """A new referral's reference, its child's (synthetic) name, and the start of its sealed input as the UI shows it."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=CONDITION_TIMEOUT) as http:
        api = Referrals(stack, http, Ledger(), seed="web-ui")
        reference = await api.submit()
    client = await Client.connect(stack.temporal_address)  # the history as stored: sealed
    started = (await client.get_workflow_handle(reference).fetch_history()).events[0]
    sealed = started.workflow_execution_started_event_attributes.input.payloads[0].data
    return reference, api.forms[reference].children[0].name, base64.b64encode(sealed).decode()[:24]


async def dashboard_signed_in(browser: Browser, stack: RunningStack, user: str | None) -> BrowserContext:
    """A browser, signed in on the dashboard as `user` (on `localhost`, the host the Web UI reaches) or not at all."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    if user is not None:
        page = await context.new_page()
        await page.goto(f"http://localhost:{stack.api_port}/dashboard/login")
        await page.fill("#token", stack.token(user))
        await page.click("button[type=submit]")
        await page.wait_for_url(f"http://localhost:{stack.api_port}/dashboard/*")
        await page.close()
    return context


async def web_ui_with_credentials(context: BrowserContext, stack: RunningStack, reference: str, image: str | None) -> Page:
    """The referral's page in the Web UI, its Codec Server setting made once as an auditor makes it: the stack's
    codec server, with cross-origin credentials included (the dev server offers no flag for that)."""
    page = await context.new_page()
    await page.goto(f"http://localhost:{stack.ui_port}/namespaces/default/workflows/{reference}")
    await page.locator("[data-testid^='data-encoder-status']").click()
    await page.locator("#use-local-endpoint-radio").check(force=True)
    await page.fill("#data-encoder-endpoint-input", f"http://localhost:{stack.codec_port}")
    await page.locator("[data-testid='data-encoder-include-credentials']").click()
    if image:
        await screenshot(page, image)
    await page.get_by_role("button", name="Apply").click()
    await page.reload()
    return page


async def test_the_web_ui_decodes_for_a_signed_in_auditor_and_nobody_else(
    stack: RunningStack, referral: tuple[str, str, str], browser_as: Browser
) -> None:
    reference, child_name, ciphertext = referral
    seen: dict[str, str] = {}

    async def shown(page: Page, text: str, who: str) -> None:
        await page.get_by_text(text).first.wait_for(timeout=UI_TIMEOUT_MS)
        seen[who] = await page.locator("main").inner_text()
        await screenshot(page, f"web-ui-{who}")

    for user in (None, "screener", "auditor"):
        context = await dashboard_signed_in(browser_as, stack, user)
        page = await web_ui_with_credentials(context, stack, reference, "web-ui-codec-setting" if user is None else None)
        await shown(page, child_name if user == "auditor" else ciphertext, user or "not-signed-in")
        if user == "auditor":
            # Signing out on the dashboard ends the session: the same browser's Web UI is back to ciphertext.
            dashboard = await context.new_page()
            await dashboard.goto(f"http://localhost:{stack.api_port}/dashboard/")
            await dashboard.get_by_role("button", name="Sign out").click()
            await dashboard.wait_for_url("**/dashboard/login")
            await page.reload()
            await shown(page, ciphertext, "signed-out")
        await context.close()

    assert child_name in seen["auditor"] and ciphertext not in seen["auditor"]
    for other in ("not-signed-in", "screener", "signed-out"):
        assert ciphertext in seen[other] and child_name not in seen[other], other
        assert "Codec Server could not connect" in seen[other], other

    # The auditor's reads are in the access log, through the dashboard's session.
    auditor = DEMO_USERS["auditor"].id
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=CONDITION_TIMEOUT) as http:
        log = await http.get("/access-log", params={"actor_id": auditor}, headers={"Authorization": f"Bearer {stack.token('auditor')}"})
    assert log.status_code == 200, log.text
    decodes = [e for e in log.json() if e["channel"] == "codec_server" and e["action"] == "decode_payloads"]
    assert decodes and all(e["detail"]["credentials"] == "dashboard_session" for e in decodes)
    # Nobody else's attempt decoded anything, so nobody else's read is recorded.
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=CONDITION_TIMEOUT) as http:
        screener = DEMO_USERS["screener"].id
        log = await http.get("/access-log", params={"actor_id": screener}, headers={"Authorization": f"Bearer {stack.token('auditor')}"})
    assert not [e for e in log.json() if e["channel"] == "codec_server"]

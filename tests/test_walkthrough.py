"""One referral from VIST to closure through the dashboard alone, as the officer, the supervisor, the screener and the
partner who owns its action: once with the mouse, once from the keyboard only, with a screenshot of each step."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Locator, Page

from auth.sessions import COOKIE
from starter.referrals import Referrals
from tests.helpers import STARTED, advance_to, eventually
from tests.local_servers import free_port, serving
from tests.test_dashboard import (  # noqa: F401
    SCREENSHOTS,
    browser_as,
    dashboard_app,
    dashboard_settings,
    screenshot,
    tokens,
)
from workflows.models import CloseReason, Stage
from workflows.referral import ReferralWorkflow

LONDON = ZoneInfo("Europe/London")
# Far more Tab presses than any page here has stops: a field never reached is a failure, not a wait.
MOST_TABS = 400


def written(moment: datetime) -> str:
    """A time as a person writes it in the dashboard: London day/month/year and 24-hour time."""
    return moment.astimezone(LONDON).strftime("%d/%m/%Y %H:%M")


class Hands(Protocol):
    """How a person works a page: with the mouse, or from the keyboard alone."""

    page: Page

    async def write(self, selector: str, text: str) -> None: ...
    async def choose(self, selector: str, option: str) -> None: ...
    async def tick(self, selector: str) -> None: ...
    async def press(self, button: str) -> None: ...
    async def follow(self, link: str) -> None: ...


class Mouse:
    def __init__(self, page: Page) -> None:
        self.page = page

    async def write(self, selector: str, text: str) -> None:
        await self.page.locator(selector).fill(text)

    async def choose(self, selector: str, option: str) -> None:
        await self.page.locator(selector).select_option(label=option)

    async def tick(self, selector: str) -> None:
        await self.page.locator(selector).check()

    async def press(self, button: str) -> None:
        await self.page.get_by_role("button", name=button, exact=True).click()

    async def follow(self, link: str) -> None:
        await self.page.get_by_role("link", name=link, exact=True).click()


class Keyboard:
    """Tab to each field (Shift is never needed: a page is filled in its order), then type, Space or Enter; arrow
    keys within a group of radio buttons. No click, no programmatic fill."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def reach(self, target: Locator) -> None:
        for _ in range(MOST_TABS):
            if await target.evaluate("element => element === document.activeElement"):
                return
            await self.page.keyboard.press("Tab")
        pytest.fail(f"never reached from the keyboard: {target}")

    async def write(self, selector: str, text: str) -> None:
        await self.reach(self.page.locator(selector))
        await self.page.keyboard.type(text)

    async def choose(self, selector: str, option: str) -> None:
        # A focused list takes the option's words typed: the browser's own type-ahead.
        await self.reach(self.page.locator(selector))
        await self.page.keyboard.type(option)

    async def tick(self, selector: str) -> None:
        target = self.page.locator(selector)
        if await target.get_attribute("type") == "radio":
            # Tab enters a group of radio buttons at its first; the arrow keys move to (and choose) the others.
            name = await target.get_attribute("name")
            await self.reach(self.page.locator(f"input[name='{name}']").first)
            while not await target.evaluate("element => element === document.activeElement"):
                await self.page.keyboard.press("ArrowDown")
        else:
            await self.reach(target)
        await self.page.keyboard.press("Space")

    async def press(self, button: str) -> None:
        await self.reach(self.page.get_by_role("button", name=button, exact=True))
        await self.page.keyboard.press("Enter")

    async def follow(self, link: str) -> None:
        await self.reach(self.page.get_by_role("link", name=link, exact=True))
        await self.page.keyboard.press("Enter")


HANDS = {"mouse": Mouse, "keyboard": Keyboard}


class Walk:
    """One person after another at the same browser window, each signing in with their own token."""

    def __init__(self, page: Page, hands: Hands, base: str, tokens: dict[str, str], run: str) -> None:
        self.page, self.hands, self.base, self.tokens, self.run = page, hands, base, tokens, run
        self.step = 0

    async def snap(self, name: str) -> None:
        """A screenshot of the step, in .data/screenshots/walkthrough-<run>/ (the mouse run's are the docs')."""
        self.step += 1
        (SCREENSHOTS / f"walkthrough-{self.run}").mkdir(parents=True, exist_ok=True)
        await screenshot(self.page, f"walkthrough-{self.run}/{self.step:02d}-{name}")

    async def sign_in(self, user: str, path: str) -> None:
        """Open `path`, signed out: the sign-in page first, then back to it."""
        await self.page.goto(f"{self.base}/dashboard{path}")
        assert "/dashboard/login" in self.page.url
        await self.hands.write("#token", self.tokens[user])
        await self.hands.press("Sign in")
        await self.page.wait_for_url(f"{self.base}/dashboard{path}")

    async def sign_out(self) -> None:
        await self.hands.press("Sign out")
        await self.page.wait_for_url(f"{self.base}/dashboard/login")
        assert not [c for c in await self.page.context.cookies() if c["name"] == COOKIE]

    async def send(self, button: str, then: str) -> None:
        await self.hands.press(button)
        await self.page.wait_for_url(f"{self.base}/dashboard{then}")


@pytest.mark.parametrize("run", ["mouse", "keyboard"])
async def test_one_referral_from_vist_to_closure_through_the_dashboard_alone(
    run, time_env, pool, dashboard_app, tokens, browser_as
):
    now = await time_env.get_current_time()
    async with serving(dashboard_app, free_port()) as base:
        context = await browser_as.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = await context.new_page()
        # The pages' content security policy must refuse nothing they draw themselves.
        refusals: list[str] = []
        page.on("console", lambda message: refusals.append(message.text)
                if "Content Security Policy" in message.text else None)
        walk = Walk(page, HANDS[run](page), base, tokens, run)
        hands = walk.hands

        # The officer submits a VIST about a domestic-abuse incident two hours ago, first without the child's voice.
        await walk.sign_in("officer", "/vist")
        # The style block runs by its nonce: the header is drawn in the dashboard's blue.
        assert await page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 78, 137)"
        await hands.choose("#vist-incident-type", "domestic abuse")
        await hands.write("#vist-incident-occurred_at", written(now - timedelta(hours=2)))
        await hands.write("#vist-incident-location", "1 Synthetic Row, Testtown")
        await hands.write("#vist-children-0-name", "Synthetic Child Walker")
        await hands.write("#vist-children-0-date_of_birth", "04/03/2018")
        await hands.write("#vist-children-0-observed", "Synthetic: quiet, clean clothes, a bruise on the left arm.")
        await hands.tick("#vist-initial_risk input[value=medium]")
        await hands.write("#vist-station", "Testtown")
        await walk.snap("officer-fills-the-vist")
        await hands.press("Submit the VIST")
        await page.wait_for_url(f"{base}/dashboard/vist")
        voice = page.locator("#vist-children-0-voice_of_the_child")
        assert await voice.get_attribute("aria-invalid") == "true"
        error = page.locator("#vist-children-0-voice_of_the_child-error")
        assert "required when the incident is domestic abuse" in await error.inner_text()
        assert "vist-children-0-voice_of_the_child-error" in (await voice.get_attribute("aria-describedby")).split()
        # What the officer wrote is kept; the error is beside its field and in the summary, which links to it.
        assert await page.locator("#vist-children-0-name").input_value() == "Synthetic Child Walker"
        assert await page.locator(".error-summary a[href='#vist-children-0-voice_of_the_child']").count() == 1
        await walk.snap("the-vist-refused-beside-its-field")
        await hands.write("#vist-children-0-voice_of_the_child", "Synthetic: said he hid in his room.")
        await hands.press("Submit the VIST")
        await page.wait_for_url(f"{base}/dashboard/vist/REF-*")
        reference = page.url.rsplit("/", 1)[1]
        assert Referrals.matches(reference)
        STARTED.append(time_env.client.get_workflow_handle(reference))
        handle = STARTED[-1]
        assert "supervisor review" in await page.locator(".notice").inner_text()
        await walk.snap("the-vist-submitted")
        await walk.sign_out()

        # The sergeant approves it on the referral's page.
        await advance_to(time_env, now + timedelta(hours=1))
        await walk.sign_in("sergeant", f"/referrals/{reference}")
        await hands.tick("#review-approved input[value=true]")
        await walk.snap("the-supervisor-reviews")
        await walk.send("Record the review", f"/referrals/{reference}?done=review")
        assert "Review recorded" in await page.locator(".notice").inner_text()
        await walk.sign_out()

        # The screener screens it: a decision for every child, a strategy discussion.
        await advance_to(time_env, now + timedelta(hours=3))
        await walk.sign_in("screener", f"/referrals/{reference}")
        await hands.choose("#screening-risk", "medium")
        await hands.tick("#screening-outcome input[value=strategy_discussion]")
        await hands.choose("#screening-child_decisions-0-decision", "strategy discussion")
        await hands.write("#screening-child_decisions-0-rationale", "Synthetic: injury seen, disclosure made.")
        await hands.write("#screening-rationale", "Synthetic: threshold for a strategy discussion met.")
        await hands.tick("input[name='agencies_informed.1']")  # children's social care
        await walk.snap("the-screener-screens")
        await walk.send("Record the screening", f"/referrals/{reference}?done=screening")

        # The strategy discussion, its three agencies and both named roles present, starts section 47 enquiries.
        held = now + timedelta(hours=5)
        await advance_to(time_env, held + timedelta(minutes=30))
        await page.reload()
        await hands.write("#strategy-discussion-held_at", written(held))
        for row, (name, agency, role, named) in enumerate([
            ("Social Worker Synthetic", "children's social care", "social worker", "allocated social worker"),
            ("Health Visitor Synthetic", "health", "health visitor", None),
            ("DC Synthetic", "police", "detective constable", "investigating officer"),
        ]):
            await hands.write(f"#strategy-discussion-attendees-{row}-name", name)
            await hands.choose(f"#strategy-discussion-attendees-{row}-agency", agency)
            await hands.write(f"#strategy-discussion-attendees-{row}-role", role)
            if named:
                await hands.choose(f"#strategy-discussion-attendees-{row}-named_role", named)
        await hands.tick("#strategy-discussion-section_47 input[value=true]")
        await hands.write("#strategy-discussion-rationale", "Synthetic: significant harm suspected.")
        await walk.snap("the-strategy-discussion")
        await walk.send("Record the strategy discussion", f"/referrals/{reference}?done=strategy-discussion")

        # The conference is booked three days on, police attending; then held, and its outcome recorded with an
        # action for health.
        state = await handle.query(ReferralWorkflow.state)
        assert state.stage is Stage.CONFERENCE and state.section_47
        conference_at = (held + timedelta(days=3)).replace(second=0, microsecond=0)
        await hands.write("#conference-conference_at", written(conference_at))
        await hands.tick("#conference-police_attendance input[value=attend]")
        await walk.snap("the-conference-booked")
        await walk.send("Book the conference", f"/referrals/{reference}?done=conference")
        await advance_to(time_env, conference_at + timedelta(hours=2))
        await page.reload()
        await hands.write("#conference-outcome-held_at", written(conference_at))
        await hands.tick("#conference-outcome-child_protection_plan input[value=false]")
        await hands.tick("#conference-outcome-police_attended input[value=true]")
        await hands.write("#conference-outcome-rationale", "Synthetic: safety plan agreed without a plan.")
        await hands.write("#conference-outcome-agreed_actions-0-description", "Synthetic: a home visit within a day.")
        await hands.choose("#conference-outcome-agreed_actions-0-owner-agency", "health")
        await hands.write("#conference-outcome-agreed_actions-0-owner-owner", "Health Visitor Synthetic")
        await hands.write("#conference-outcome-agreed_actions-0-deadline", written(conference_at + timedelta(days=1)))
        await walk.snap("the-conference-outcome")
        await walk.send("Record the outcome", f"/referrals/{reference}?done=conference-outcome")
        action_id = f"{reference}.A1"
        assert (await handle.query(ReferralWorkflow.state)).stage is Stage.ACTIONS
        await walk.sign_out()

        # The health partner finds the action among those due soon, and completes it: the referral closes.
        await walk.sign_in("health-partner", "/actions")
        await hands.follow(action_id)
        await page.wait_for_url(f"{base}/dashboard/actions/{action_id}")
        await hands.write("#completion-note", "Synthetic: visited, all well; notes on the health record.")
        await walk.snap("the-partner-completes-the-action")
        await walk.send(f"Complete {action_id}", f"/actions/{action_id}?done=completion")
        assert "Action completed" in await page.locator(".notice").inner_text()
        await walk.sign_out()

        state = await eventually(lambda: handle.query(ReferralWorkflow.state), lambda s: s.stage is Stage.CLOSED)
        assert state.close_reason is CloseReason.NO_CHILD_PROTECTION_PLAN
        await walk.sign_in("sergeant", f"/referrals/{reference}")

        async def summary() -> str:
            await page.reload()
            return await page.locator("p.lead").first.inner_text()

        assert "no child protection plan" in await eventually(summary, lambda lead: "closed" in lead)
        await walk.snap("the-referral-closed")
        await context.close()
    assert refusals == []

    # Every decision is the workflow's, under the person who made it, signed as the API's are.
    deciders = await eventually(
        lambda: pool.fetch("SELECT kind, actor_id FROM referral_events WHERE reference = $1 ORDER BY seq", reference),
        lambda rows: any(r["kind"] == "closed" for r in rows),
    )
    made = {row["kind"]: row["actor_id"] for row in deciders}
    assert (made["vist_submitted"], made["supervisor_reviewed"]) == ("PC-1001", "PS-2001")
    assert {made[kind] for kind in ("screened", "strategy_discussion_held", "conference_booked", "conference_held")} == {
        "CRU-3001"}
    assert made["action_completed"] == "HV-5001"

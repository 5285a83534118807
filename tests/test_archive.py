"""The synthetic archive a fresh stack imports: twelve weeks of closed referrals on the timeliness page, written
through the recorder, counted as imported by the reconciliation, and written once however often it is imported."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.app import create_app
from audit.reconcile import Problem, reconcile
from auth.tokens import Authenticator
from starter.archive import SOURCE, WEEKS, archive, import_archive
from tests.helpers import sign_in
from tests.local_servers import free_port, serving
from tests.test_accessibility import overflow, violations
from tests.test_accessibility import sign_in as sign_in_browser
from tests.test_dashboard import browser_as, dashboard_settings, screenshot, tokens  # noqa: F401
from workflows.models import Stage

LONDON = ZoneInfo("Europe/London")


def figures(page: str, title: str) -> dict[str, list[str]]:
    """A chart's figures table, as the page drew it: each row's label and its values."""
    table = re.search(rf"<summary>{re.escape(title)}: the figures</summary>(.*?)</table>", page, re.S)
    assert table, f"no chart {title!r} on the page"
    rows = re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table.group(1), re.S)
    return {label: re.findall(r"<td>(.*?)</td>", cells) for label, cells in rows}


@pytest.fixture
async def thursday(time_env) -> datetime:
    """Noon on the Thursday of the test server's week, London time: the page's "now" and the archive's."""
    today = (await time_env.get_current_time()).astimezone(LONDON).date()
    return datetime.combine(today - timedelta(days=today.weekday() - 3), time(12), LONDON)


@pytest.fixture
async def timeliness_page(time_env, pool, dashboard_settings, sla_policy, tokens, thursday) -> AsyncIterator:  # noqa: F811
    async def fixed_clock() -> datetime:
        return thursday

    app = create_app(time_env.client, pool, dashboard_settings, authenticator=Authenticator.from_settings(dashboard_settings),
                     sla_policy=sla_policy, clock=fixed_clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dashboard") as http:
        browser = await sign_in(http, tokens["sergeant"])

        async def page() -> str:
            response = await http.get("/dashboard/timeliness", headers=browser.headers)
            assert response.status_code == 200
            return response.text

        page.app = app
        yield page


def test_the_archive_is_twelve_weeks_of_plausible_closed_referrals(sla_policy):
    now = datetime(2026, 11, 26, 12, tzinfo=LONDON)
    cases = archive(now, sla_policy)
    assert archive(now, sla_policy)[0].facts == cases[0].facts  # seeded by the week: the same archive again
    weeks = {case.facts[0].at.astimezone(LONDON).date() - timedelta(days=case.facts[0].at.astimezone(LONDON).weekday())
             for case in cases}
    assert len(weeks) == WEEKS
    assert all(case.stage is Stage.CLOSED and case.ended < now for case in cases)
    stages = [f.payload["to_stage"] for case in cases for f in case.facts if f.kind == "stage_changed"]
    assert {Stage.STRATEGY_DISCUSSION, Stage.CONFERENCE, Stage.ACTIONS} <= set(map(Stage, stages))
    # Every stream numbers its facts from one without a gap, as an outbox does.
    for case in cases:
        for stream in {f.stream for f in case.facts}:
            assert [f.seq for f in case.facts if f.stream == stream] == list(range(1, 1 + sum(
                f.stream == stream for f in case.facts)))
    # Most stages are done in time, not all: a chart of deadlines met has something to show.
    met = []
    for case in cases:
        moves = [f for f in case.facts if f.kind == "stage_changed"]
        met += [after.at <= datetime.fromisoformat(before.payload["deadline"])
                for before, after in zip(moves, moves[1:]) if before.payload["deadline"]]
    assert 0.6 < sum(met) / len(met) < 1


async def test_after_the_import_the_timeliness_page_has_each_of_its_twelve_weeks_and_the_reconciliation_agrees(
    time_env, pool, sla_policy, thursday, timeliness_page, browser_as, tokens  # noqa: F811
):
    imported = await import_archive(pool, thursday, sla_policy)
    page = await timeliness_page()
    for title in ("Stage deadlines met (%), by week entered", "Time in supervisor review, by week entered",
                  "Time in screening, by week entered"):
        weekly = figures(page, title)
        assert len(weekly) == WEEKS
        assert all(any(values) for values in weekly.values()), (title, weekly)
    assert any(v for values in figures(page, "ICPC: police attendance or report in lieu, by week booked").values()
               for v in values)
    # The page full of charts, in Chromium: no axe-core violation, and it fits a phone (docs/images show it).
    async with serving(timeliness_page.app, free_port()) as base:
        tab = await browser_as.new_page(viewport={"width": 1280, "height": 860})
        await sign_in_browser(tab, base, tokens["sergeant"])
        for width in (1280, 390):
            await tab.set_viewport_size({"width": width, "height": 860})
            await tab.goto(f"{base}/dashboard/timeliness")
            assert await violations(tab) + await overflow(tab) == []
            await screenshot(tab, f"timeliness-{width}")

    # Imported once, however often: the same facts, the same rows.
    rows = await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = ANY($1)", imported)
    assert await import_archive(pool, thursday, sla_policy) == imported
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = ANY($1)", imported) == rows
    assert set(await pool.fetchval("SELECT array_agg(source) FROM imported_cases WHERE reference = ANY($1)",
                                   imported)) == {SOURCE}

    # No workflow ran them, and the reconciliation knows: counted as imported, not as rows without a history.
    report = await reconcile(time_env.client, pool, references=imported)
    assert report.mismatches == [] and report.imported == sorted(imported)
    # Without its mark, an imported referral is what it would otherwise be: rows with no history.
    async with pool.acquire() as conn, conn.transaction():
        mark = await conn.fetchrow("DELETE FROM imported_cases WHERE reference = $1 RETURNING *", imported[0])
    try:
        unmarked = await reconcile(time_env.client, pool, references=[imported[0]])
        assert [m.problem for m in unmarked.mismatches] == [Problem.NO_HISTORY]
    finally:
        await pool.execute("INSERT INTO imported_cases VALUES ($1, $2, $3)", *mark.values())

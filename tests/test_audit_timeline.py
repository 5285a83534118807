"""Timelines and past states reconstructed from histories: the recorded paths, a live referral, and the HTML in Chromium."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.as_of import state_as_of, state_from_facts
from audit.history import DecodedEpisode, decode_case, decode_referral, fetch_referral
from audit.report import local, render_timeline_html
from cli.audit import Exit, audit_app
from audit.timeline import ReferralTimeline, build_episode_timeline, build_timeline
from starter.synthetic import FAMILY_NAMES, FIRST_NAMES, SCREENER, SERGEANT, approval, screening, strategy_discussion
from tests.audit_helpers import GENERATIONS, HISTORIES_CONVERTER, KEYRING, decoded_path, recorded, recorded_path
from tests.helpers import skip, finished, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ReferralState,
    RiskGrade,
    RiskRegrade,
    ScreeningOutcome,
    Stage,
)
from workflows.referral import ReferralWorkflow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# Words that would mean personal data or free text leaked into a report.
FORBIDDEN = [*FIRST_NAMES, *FAMILY_NAMES, "Synthetic", "Testtown TT", "Imaginary Lane"]


async def test_the_state_folded_from_facts_is_the_workflows_own_final_state():
    for referral in (case for case in recorded() if not case.is_episode):
        decoded = await decode_referral(referral, HISTORIES_CONVERTER)
        assert decoded.result is not None, referral.reference
        assert state_from_facts(decoded) == decoded.result, referral.reference


async def test_timeline_of_a_late_screening_escalated_and_acknowledged():
    timeline = build_timeline(await decoded_path("escalation_acknowledged"))
    review, screening_stage = timeline.stages
    assert (review.stage, review.timeliness.met) == (Stage.SUPERVISOR_REVIEW, True)
    assert review.entered_by.role.value == "system" and review.left_by.id == SERGEANT.id
    # Screening was due Monday 15:00 and done on the Thursday: missed, by the margin between them.
    assert screening_stage.timeliness.met is False
    assert screening_stage.timeliness.margin == screening_stage.timeliness.deadline - screening_stage.left_at
    assert screening_stage.timeliness.margin < -timedelta(days=2)
    assert [(e.rung, e.rank) for e in timeline.escalations] == [(0, "sergeant"), (1, "inspector"), (2, "superintendent")]
    acknowledged = timeline.escalations[1]
    assert acknowledged.acknowledged_by == SERGEANT.id
    assert acknowledged.acknowledged_after == acknowledged.acknowledged_at - acknowledged.raised_at
    kinds = [(d.kind, d.update, d.actor.id) for d in timeline.decisions]
    assert kinds == [
        ("vist_submitted", None, "PC-1001"),
        ("supervisor_reviewed", "review", SERGEANT.id),
        ("escalation_acknowledged", "acknowledge_escalation", SERGEANT.id),
        ("screened", "screen", SCREENER.id),
        ("closed", "screen", SCREENER.id),
    ]
    assert timeline.close_reason.value == "early_help"


async def test_timeline_of_regrades_meetings_actions_and_the_conference():
    regraded = build_timeline(await decoded_path("risk_regraded"))
    assert [(r.from_risk, r.to_risk) for r in regraded.regrades] == [
        (RiskGrade.MEDIUM, RiskGrade.HIGH),
        (RiskGrade.HIGH, RiskGrade.MEDIUM),
    ]
    review = regraded.stages[0]
    assert [c.cause for c in review.deadline_changes] == ["entered", "risk_regraded", "risk_regraded"]
    assert review.deadline_changes[1].deadline - review.entered_at == timedelta(hours=2)

    report = build_timeline(await decoded_path("report_in_lieu"))
    (meeting,) = report.meetings
    assert meeting.quorate and meeting.section_47
    assert {a.agency.value for a in meeting.attendees} == {"childrens_social_care", "health", "police"}
    (action,) = report.actions
    assert action.agency.value == "police" and action.timeliness.met is True
    assert report.conference.police_attendance.value == "report_in_lieu"
    assert report.conference.timeliness.met is True

    reminded = build_timeline(await decoded_path("action_reminded_and_escalated"))
    (late,) = reminded.actions
    assert late.reminded_at is not None and late.timeliness.met is False
    assert [e.subject for e in reminded.escalations] == [late.action_id]


async def test_reports_name_no_one_and_quote_no_free_text():
    for case in recorded():
        decoded = await decode_case(case, HISTORIES_CONVERTER)
        if isinstance(decoded, DecodedEpisode):
            texts = [build_episode_timeline(decoded).model_dump_json()]
        else:
            timeline = build_timeline(decoded)
            texts = [timeline.model_dump_json(), render_timeline_html(timeline)]
        for text in texts:
            leaked = [word for word in FORBIDDEN if word in text]
            assert not leaked, (case.reference, leaked)


async def test_as_of_shows_what_each_decider_could_see_then(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=90)
    seen = []

    async def moment():
        state = await handle.query(ReferralWorkflow.state)
        seen.append((await time_env.get_current_time(), state))
        await skip(time_env, timedelta(minutes=30))

    await moment()
    await handle.execute_update(ReferralWorkflow.review, approval())
    await state_when(handle, lambda s: s.screening_view is not None)
    await moment()  # what the screener could see when deciding
    await handle.execute_update(
        ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.HIGH, reason="Synthetic reason.")
    )
    await moment()
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    await moment()
    await time_env.client.get_workflow_handle(f"{handle.id}.A1").execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic completion.")
    )
    final = await finished(time_env, handle)

    for at, state in seen:
        assert await state_as_of(time_env.client, handle.id, at) == state, at
    decoded = await decode_referral(await fetch_referral(time_env.client, handle.id), time_env.client.data_converter)
    assert state_from_facts(decoded) == final
    screener_saw = state_from_facts(decoded, seen[1][0])
    assert screener_saw.stage is Stage.SCREENING and screener_saw.screening_view == seen[1][1].screening_view


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (deploy/ensure-chromium.sh)")
async def test_the_html_report_opens_in_chromium_with_its_chart_visible():
    from playwright.async_api import async_playwright

    timeline = build_timeline(await decoded_path("action_reminded_and_escalated"))
    folder = Path(os.environ.get("SCREENSHOT_DIR", ROOT / ".data" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    page_file = folder / f"timeline-{timeline.reference}.html"
    page_file.write_text(render_timeline_html(timeline))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-extensions"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            requests = []
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(page_file.as_uri())
            chart = page.locator("svg#gantt")
            assert await chart.is_visible()
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 100
            assert await page.locator("svg#gantt rect.bar").count() == len(timeline.stages) + len(timeline.actions)
            assert await page.locator("svg#gantt rect.bar.missed").count() == 1
            assert await page.locator("svg#gantt polygon.escalation").count() == len(timeline.escalations)
            await chart.screenshot(path=str(folder / f"timeline-{timeline.reference}-chart.png"))
            await page.screenshot(path=str(folder / f"timeline-{timeline.reference}.png"), full_page=True)
            assert requests == [page_file.as_uri()]  # self-contained: nothing else was fetched
        finally:
            await browser.close()


def test_the_timeline_and_as_of_commands_work_from_an_export(tmp_path, monkeypatch, postgres_dsn, pool):
    monkeypatch.setenv("ENCRYPTION_KEYS", KEYRING.to_json())
    # Reads are recorded in the access log (`pool`: the test database, migrated) under the named auditor.
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("REFERRALS_AUDITOR_ID", "AUD-4001")
    folder = GENERATIONS[0] / "report_in_lieu"
    reference = recorded_path("report_in_lieu").reference
    runner = CliRunner()
    html, data = tmp_path / "timeline.html", tmp_path / "timeline.json"
    made = runner.invoke(audit_app, ["timeline", reference, "--from-dir", str(folder), "--html", str(html), "--json-file", str(data)])
    assert made.exit_code == 0, made.output
    assert html.read_text().startswith("<!DOCTYPE html>") and '<svg id="gantt"' in html.read_text()
    timeline = ReferralTimeline.model_validate_json(data.read_text())
    assert timeline.reference == reference and timeline.conference is not None

    booked = next(d for d in timeline.decisions if d.kind == "conference_booked")
    state = runner.invoke(audit_app, ["as-of", reference, booked.at.isoformat(), "--from-dir", str(folder)])
    assert state.exit_code == 0, state.output
    as_of = ReferralState.model_validate_json(state.output)
    assert as_of.stage is Stage.CONFERENCE and as_of.conference_at is not None and as_of.close_reason is None
    too_early = runner.invoke(audit_app, ["as-of", reference, "2001-01-01T00:00:00+00:00", "--from-dir", str(folder)])
    assert too_early.exit_code == Exit.MALFORMED and "no facts were recorded" in too_early.output


async def test_a_chart_shorter_than_a_day_has_its_axis_labelled_and_every_time_to_the_second():
    timeline = build_timeline(await decoded_path("no_further_action"))
    assert timeline.measured_to - timeline.submitted_at < timedelta(days=1)
    html = render_timeline_html(timeline)
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', html)
    assert len(ticks) >= 2 and all(tick.strip() for tick in ticks)
    assert local(timeline.submitted_at) in html and re.search(r"\d\d:\d\d:\d\d", local(timeline.submitted_at))


async def test_the_report_is_drawn_in_the_dashboards_layout_with_london_times_and_yes_or_no():
    timeline = build_timeline(await decoded_path("action_reminded_and_escalated"))
    html = render_timeline_html(timeline)
    assert html.startswith("<!DOCTYPE html>")
    # The dashboard's own stylesheet and landmarks, from the layout both draw on.
    assert (ROOT / "layout" / "templates" / "style.css").read_text().strip() in html
    assert re.search(r"<header>.*</header>\s*<main>", html, re.S) and "</main>" in html
    # Every time in London words, every flag in words: no ISO text, no Python True or False.
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", html.replace(timeline.run_id, ""))
    assert not re.search(r"\b(True|False)\b", html) and ">None<" not in html
    assert local(timeline.submitted_at) in html and "quorate" in html and re.search(r"<td>(yes|no)</td>", html)
    # A cell's text is escaped by the template: a made-up staff ID with markup stays text.
    odd = timeline.model_copy(update={"reference": "<b>REF</b>"})
    assert "<b>REF</b>" not in render_timeline_html(odd) and "&lt;b&gt;REF&lt;/b&gt;" in render_timeline_html(odd)

"""The audit reads every kind of case alike through the API and the CLI: a missing episode's and a day's triage's
timeline, state as of a moment, replay and reconciliation; an open overdue step is measured to now."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from audit.cases import CASE_TYPES
from audit.history import CASE_WORKFLOWS, decode_case, fetch_referral
from audit.report import local, render_timeline_html, span_text
from audit.timeline import EpisodeTimeline, ReferralTimeline, TriageTimeline, build_timeline
from cli.audit import audit_app
from starter.synthetic import SERGEANT, approval, screening, strategy_discussion
from tests import test_triage
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.audit_helpers import HISTORIES_CONVERTER, recorded_triages
from tests.conftest import TEST_KEYRING
from tests.helpers import STARTED, eventually, skip, start_episode, start_referral
from tests.test_audit_timeline import CHROMIUM
from workflows.action import AgreedActionWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeState
from workflows.models import ActionOwner, ActionReassignment, Agency, ScreeningOutcome, Stage
from workflows.referral import ReferralWorkflow
from workflows.triage_models import TriageState

runner = CliRunner()


def test_every_case_workflow_has_its_case_type():
    assert {t.workflow for t in CASE_TYPES} == set(CASE_WORKFLOWS)


async def test_recorded_triages_fold_into_their_final_state_and_read_as_timelines():
    for case in recorded_triages():
        triage = await decode_case(case, HISTORIES_CONVERTER)
        (kind,) = [t for t in CASE_TYPES if t.workflow == case.workflow_type]
        assert kind.state_at(triage, None) == triage.result
        timeline = kind.timeline(triage)
        assert isinstance(timeline, TriageTimeline) and timeline.items
        assert [i.outcome for i in timeline.items] == [i.outcome for i in triage.result.items]
        assert "<svg" in render_timeline_html(timeline)


async def cli(time_env, postgres_dsn, *args: str):
    env = {"TEMPORAL_ADDRESS": time_env.client.service_client.config.target_host, "DATABASE_URL": postgres_dsn,
           "ENCRYPTION_KEYS": TEST_KEYRING.to_json(), "REFERRALS_AUDITOR_ID": "AUD-4201"}
    result = await asyncio.to_thread(runner.invoke, audit_app, list(args), env=env)
    assert result.exit_code == 0, (args, result.output)
    return result


async def test_a_missing_episode_and_a_triage_through_the_api_and_the_cli(
    api, auth, time_env, pool, postgres_dsn, time_queue, sla_policy, tmp_path
):
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="audited-episode")
    reported = await episode.query(MissingEpisodeWorkflow.state)
    # The first review falls due while nobody reviews: open and late, measured to now.
    await skip(time_env, timedelta(hours=30))
    await eventually(lambda: episode.query(MissingEpisodeWorkflow.state), lambda s: s.escalations)
    await test_triage.test_the_days_list_takes_domestic_abuse_below_high_risk_received_since_the_last_working_day(
        time_env, pool, time_queue, sla_policy
    )
    (triage,) = [h.id for h in STARTED if h.id.startswith("TRIAGE-")][-1:]
    now = await time_env.get_current_time()

    for reference, model, state in ((episode.id, EpisodeTimeline, EpisodeState), (triage, TriageTimeline, TriageState)):
        base = f"/audit/referrals/{reference}"
        timeline = model.model_validate((await api.get(f"{base}/timeline", headers=auth("auditor"))).json())
        assert timeline.reference == reference
        html = await api.get(f"{base}/timeline", params={"format": "html"}, headers=auth("auditor"))
        assert html.status_code == 200 and '<svg id="gantt"' in html.text
        at = (timeline.decisions[-1].at if timeline.decisions else timeline.ends_at).isoformat()
        as_of = await api.get(f"{base}/as-of", params={"at": at}, headers=auth("auditor"))
        assert as_of.status_code == 200, as_of.text
        assert state.model_validate(as_of.json())
        replayed = (await api.get(f"{base}/replay", headers=auth("auditor"))).json()
        assert replayed["histories"] and all(h["status"] == "ok" for h in replayed["histories"])
        reconciled = (await api.get("/audit/reconcile", params={"reference": reference}, headers=auth("auditor")))
        assert reconciled.status_code == 200 and reconciled.json()["mismatches"] == [], reconciled.text

        made = await cli(time_env, postgres_dsn, "timeline", reference, "--json-file", str(tmp_path / "t.json"))
        assert model.model_validate_json((tmp_path / "t.json").read_text()).reference == reference, made.output
        assert state.model_validate_json((await cli(time_env, postgres_dsn, "as-of", reference, at)).stdout)
        await cli(time_env, postgres_dsn, "reconcile", "-r", reference)

    # The episode's first review, still open, is as late as it is now, not as of its last fact.
    timeline = EpisodeTimeline.model_validate(
        (await api.get(f"/audit/referrals/{episode.id}/timeline", headers=auth("auditor"))).json())
    open_review = timeline.reviews[-1]
    assert open_review.done_at is None and open_review.met is False
    assert timeline.measured_to >= now and -open_review.margin >= now - reported.review_due - timedelta(minutes=1)
    assert f"open, {span_text(open_review.margin)} late" in render_timeline_html(timeline)
    await episode.terminate(reason="audited")


async def overdue_referral_report(env, pool, queue, policy) -> tuple[ReferralTimeline, str]:
    """A referral in section 47 enquiries whose conference is three days overdue and unbooked, one of its agreed
    actions reassigned: its timeline from the server, measured to now, and its HTML report."""
    submission, handle = await start_referral(env.client, queue, policy, seed="overdue-report")
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=2)
    )
    action = env.client.get_workflow_handle(f"{handle.id}.A1")
    await skip(env, timedelta(hours=5))
    await action.execute_update(AgreedActionWorkflow.reassign, ActionReassignment(
        actor=SERGEANT, owner=ActionOwner(agency=Agency.POLICE, owner="DC Two Synthetic", supervisor="DS Synthetic"),
        reason="Synthetic: caseload moved."))
    await skip(env, state.deadline - await env.get_current_time() + timedelta(days=3, hours=2))
    await eventually(lambda: handle.query(ReferralWorkflow.state), lambda s: s.escalations)
    decoded = await decode_case(await fetch_referral(env.client, handle.id), env.client.data_converter)
    timeline = build_timeline(decoded, now=await env.get_current_time())
    return timeline, render_timeline_html(timeline)


async def test_an_open_overdue_stage_reads_late_to_now_with_its_reassignments_marked(
    time_env, pool, time_queue, sla_policy, tmp_path
):
    timeline, html = await overdue_referral_report(time_env, pool, time_queue, sla_policy)
    conference = timeline.stages[-1]
    assert conference.stage is Stage.CONFERENCE and conference.left_at is None
    assert conference.timeliness.met is False and -conference.timeliness.margin >= timedelta(days=3)
    assert "open, 3 days" in html and html.count('class="reassignment"') == 1
    # Every time to the second, in London time; the chart's axis labelled.
    assert local(conference.entered_at) in html and 'class="tick"' in html
    assert "+00:00" not in html and "Z<" not in html  # no raw UTC times, the details' included
    if CHROMIUM.exists():
        await screenshot(html, Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / "audit-report-open-overdue.png")


async def screenshot(html: str, png: Path) -> None:
    """The report opened in headless Chromium, its bars visible, saved as a PNG (docs/ keeps one, checked by eye)."""
    from playwright.async_api import async_playwright

    page_file = png.with_suffix(".html")
    page_file.parent.mkdir(parents=True, exist_ok=True)
    page_file.write_text(html)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(page_file.as_uri())
            assert await page.locator("svg#gantt rect.bar.missed").count() >= 1
            assert await page.locator("svg#gantt rect.reassignment").count() == 1
            await page.screenshot(path=str(png), full_page=True)
        finally:
            await browser.close()
            page_file.unlink()

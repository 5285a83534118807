"""`referrals missing ...`: report a child missing, read episodes, and every decision on one (review, tracing, found, interview)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connection import call, decide
from cli.inputs import AsJson, Output, BodyFile, DecisionKey, EpisodeId, body_from, now_iso, read_json, split_fields
from cli.rendering import (
    emit,
    render_episode,
    render_episode_intake,
    render_episode_page,
    render_most_frequently_missing,
)
from workflows.missing_models import (
    EpisodePhase,
    FoundHow,
    FoundWhere,
    InterviewOutcome,
    SafeAndWell,
    TracingActivity,
)
from workflows.models import MissingGrade

app = typer.Typer(help="Missing children: report, review, trace, found, return-home interview.", no_args_is_help=True)


def decide_episode(episode_id: str, route: str, body: dict[str, Any], key: str | None) -> None:
    emit(decide(f"/missing-episodes/{episode_id}/{route}", body, key), render_episode)


@app.command()
def report(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a missing report as JSON")],
           as_json: AsJson = False, output: Output = None) -> None:
    """Report a child missing (the report carries the risk assessment); the same report again finds its episode."""
    emit(call("POST", "/missing-episodes", body=read_json(file)), render_episode_intake)


@app.command()
def show(episode_id: EpisodeId, as_json: AsJson = False, output: Output = None) -> None:
    """An episode's phase, grade, deadlines, actions, escalations and decisions."""
    emit(call("GET", f"/missing-episodes/{episode_id}"), render_episode)


@app.command("list")
def list_episodes(
    phase: Annotated[EpisodePhase | None, typer.Option()] = None,
    grade: Annotated[MissingGrade | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Missing episodes, most recently updated first."""
    params = {"phase": phase.value if phase else None, "grade": grade.value if grade else None, "limit": limit,
              "cursor": cursor}
    emit(call("GET", "/missing-episodes", params=params), render_episode_page)


@app.command("most-frequent")
def most_frequent(limit: Annotated[int, typer.Option(min=1, max=100)] = 20, as_json: AsJson = False, output: Output = None) -> None:
    """The children most often missing in the repeat-missing window, each by their latest episode, live."""
    emit(call("GET", "/missing-episodes/most-frequent", params={"limit": limit}),
         render_most_frequently_missing)


@app.command("low-grade")
def low_grade(
    episode_id: EpisodeId,
    keep: Annotated[bool | None, typer.Option("--keep/--refuse", help="keep the low grade, or refuse it (high)")] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor: keep a low grade the indicators make implausible, or refuse it, with a rationale."""
    decide_episode(episode_id, "low-grade", body_from(None, keep_low=keep, rationale=rationale), key)


@app.command()
def review(
    episode_id: EpisodeId,
    tracing_done: Annotated[str | None, typer.Option(help="what tracing was done")] = None,
    next_steps: Annotated[str | None, typer.Option(help="what is next")] = None,
    grade: Annotated[MissingGrade | None, typer.Option(help="the grade the review sets")] = None,
    action: Annotated[list[str], typer.Option(help="a tracing action: AGENCY|OWNER|DEADLINE|DESCRIPTION[|SUPERVISOR]")] = [],  # noqa: B006
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor's review: what tracing was done, what is next, and tracing actions with owners and deadlines."""
    actions = []
    for item in action:
        fields = split_fields(item, ["agency", "owner", "deadline", "description", "supervisor?"], "--action")
        owner = {"agency": fields["agency"], "owner": fields["owner"], "supervisor": fields.get("supervisor")}
        actions.append({"owner": owner, "deadline": fields["deadline"], "description": fields["description"]})
    body = body_from(file, tracing_done=tracing_done, next_steps=next_steps, grade=grade and grade.value,
                     tracing_actions=actions)
    decide_episode(episode_id, "review", body, key)


@app.command()
def tracing(
    episode_id: EpisodeId,
    activity: Annotated[TracingActivity, typer.Option()],
    note: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Record tracing done for the missing child."""
    decide_episode(episode_id, "tracing", body_from(None, activity=activity.value, note=note), key)


@app.command()
def grade(
    episode_id: EpisodeId,
    to: Annotated[MissingGrade, typer.Option("--to")],
    reason: Annotated[str, typer.Option()],
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor: regrade the episode; every deadline moves at once."""
    decide_episode(episode_id, "grade", {"grade": to.value, "reason": reason}, key)


@app.command()
def found(
    episode_id: EpisodeId,
    where: Annotated[FoundWhere | None, typer.Option()] = None,
    how: Annotated[FoundHow | None, typer.Option()] = None,
    safe_and_well: Annotated[SafeAndWell | None, typer.Option()] = None,
    interviewer: Annotated[str | None, typer.Option(help="the social worker holding the return-home interview")] = None,
    manager: Annotated[str | None, typer.Option(help="their manager, alerted when the interview is late")] = None,
    found_at: Annotated[str | None, typer.Option(help="e.g. 2026-11-25T09:15, London time without an offset (default: now)")] = None,
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """The child is found: where and how, the safe-and-well check, and who holds the return-home interview."""
    moment = found_at or now_iso()
    owner = ({"agency": "childrens_social_care", "owner": interviewer, "supervisor": manager}
             if interviewer else None)
    body = body_from(file, found_at=moment, safe_and_well_at=moment, where=where and where.value,
                     how=how and how.value, safe_and_well=safe_and_well and safe_and_well.value, interviewer=owner)
    decide_episode(episode_id, "found", body, key)


@app.command()
def interview(
    episode_id: EpisodeId,
    outcome: Annotated[InterviewOutcome, typer.Option()],
    held_at: Annotated[str | None, typer.Option(help="when it was held, e.g. 2026-11-26T15:00 (London time)")] = None,
    reasons: Annotated[str | None, typer.Option(help="why it was declined or could not be held")] = None,
    intelligence: Annotated[str | None, typer.Option(help="intelligence for police")] = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """The return-home interview's outcome; the episode closes once its interview action is complete too."""
    body = body_from(None, outcome=outcome.value, held_at=held_at, reasons=reasons,
                     intelligence_for_police=intelligence)
    decide_episode(episode_id, "return-home-interview", body, key)

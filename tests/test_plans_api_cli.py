"""A trigger plan end to end through the CLI and the API: written by a social worker, added to by police, read by a
new missing report at once (the report's own answer shows where to look first), revised, ended."""

from __future__ import annotations

import json
from datetime import timedelta

from starter.synthetic import synthetic_missing_report, synthetic_trigger_plan
from tests.api_fixtures import api_app, authenticator, tokens, track  # noqa: F401
from tests.helpers import eventually, seeded
from tests.test_cli import Cli, api_url, cli, logs_beside_the_cli  # noqa: F401
from workflows.missing_models import RiskIndicator


async def test_a_plan_through_the_cli_is_shown_by_the_next_missing_report_at_once(cli, time_env, pool, tmp_path):
    report = synthetic_missing_report(rng=seeded("plan-cli"), indicators=[RiskIndicator.CSE_CONCERN])
    now = await time_env.get_current_time()
    plan = synthetic_trigger_plan(now + timedelta(days=30))
    written_file = tmp_path / "plan.json"
    written_file.write_text(json.dumps({"child": report.child.model_dump(mode="json"), "plan": plan.model_dump(mode="json")}))

    # Only children's social care writes it; a second plan for the child is refused, naming the first.
    await cli("officer", "plans", "write", written_file, exit_code=4)
    written = await cli.json("social-worker", "plans", "write", written_file)
    plan_id = written["plan_id"]
    track(time_env.client, plan_id)
    assert written["current"]["version"] == 1 and report.child.name not in plan_id
    again = await cli("social-worker", "plans", "write", written_file, exit_code=6)
    assert "already has a trigger plan" in again.stderr
    # A malformed ID never leaves the CLI.
    assert "no such trigger plan" in (await cli("officer", "plans", "show", "PLAN-../x", exit_code=5)).stderr

    added = await cli.json("officer", "plans", "addendum", plan_id, "--information", "Synthetic: seen at the station.")
    (action,) = added["actions"]
    assert added["addenda"][0]["fold_in_action_id"] == action["action_id"]
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM trigger_plan_addenda WHERE plan_id = $1", plan_id),
                     lambda n: n == 1)

    form = tmp_path / "report.json"
    form.write_text(report.model_dump_json())
    intake = await cli.json("officer", "missing", "report", form)
    track(time_env.client, intake["episode_id"])
    shown = intake["trigger_plan"]
    assert (shown["plan_id"], shown["current"], intake["trigger_plan_required"]) == (plan_id, True, True)
    assert shown["police_activity"]["where_to_look_first"] == plan.police_activity.where_to_look_first
    assert shown["addenda"] == ["Synthetic: seen at the station."]
    printed = (await cli("officer", "missing", "show", intake["episode_id"])).stdout
    assert plan_id in printed and "where to look first" in printed

    revision = tmp_path / "plan-v2.json"
    revision.write_text(synthetic_trigger_plan(now + timedelta(days=60)).model_dump_json())
    revised = await cli.json("social-worker", "plans", "revise", plan_id, revision, "--folds-in", "1")
    assert revised["current"]["version"] == 2 and revised["addenda"][0]["folded_into"] == 2
    await cli("social-worker", "actions", "complete", action["action_id"], "--note", "Synthetic: folded in.")
    await eventually(lambda: cli.json("social-worker", "plans", "show", plan_id),
                     lambda s: s["actions"][0]["completed_at"] is not None)
    due = await cli.json("sergeant", "plans", "due", "--within-days", "90")
    assert plan_id in [p["plan_id"] for p in due["items"]]
    ended = await cli.json("social-worker", "plans", "end", plan_id, "--reason", "Synthetic: moved away.")
    assert ended["ended_at"] is not None
    await eventually(lambda: pool.fetchval("SELECT ended_at FROM trigger_plans WHERE plan_id = $1", plan_id),
                     lambda at: at is not None)
    assert plan_id not in [p["plan_id"] for p in (await cli.json("sergeant", "plans", "due", "--within-days", "90"))["items"]]

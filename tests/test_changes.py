"""A run started on today's code asks once for every change it takes; a history recorded before asks each on its own."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer, Worker

from audit.history import load_export
from runtime.temporal import workflow_runner
from tests.audit_helpers import GENERATIONS, HISTORIES
from tests.changes_taken import LATER_CHANGE, ChangesTakenBefore, ChangesTakenToday
from workflows import changes
from workflows.changes import ALERTS_PATCH, CSC_NOTIFICATION_PATCH, GENERATION

ROOT = Path(__file__).resolve().parent.parent
SEARCH_ATTRIBUTE_UPDATE = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES


def markers(history) -> list[str]:
    return [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


async def run_once(client, workflow_class) -> tuple[list[str], object]:
    # On the dev server, in real time: the test server would skip its clock over the timers, and with it
    # every other test's waiting workflow.
    queue = f"changes-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[workflow_class], workflow_runner=workflow_runner()):
        handle = await client.start_workflow("ChangesTaken", id=f"changes-{uuid.uuid4().hex[:8]}", task_queue=queue)
        taken = await handle.result()
    return taken, await handle.fetch_history()


async def test_a_run_on_todays_code_asks_once_for_the_generation_and_on_its_own_for_a_later_change(dev_env):
    taken, history = await run_once(dev_env.client, ChangesTakenToday)
    assert taken == [ALERTS_PATCH, CSC_NOTIFICATION_PATCH, LATER_CHANGE]
    assert markers(history) == [GENERATION, LATER_CHANGE]
    assert sum(e.event_type == SEARCH_ATTRIBUTE_UPDATE for e in history.events) == 2
    await Replayer(workflows=[ChangesTakenToday], data_converter=dev_env.client.data_converter).replay_workflow(history)


async def test_a_history_from_before_the_generation_replays_each_change_as_it_was_asked(dev_env):
    taken, history = await run_once(dev_env.client, ChangesTakenBefore)
    assert taken == [ALERTS_PATCH] and markers(history) == [ALERTS_PATCH]
    # Today's code takes the change the history took and none it never had: had the generation answered for it,
    # today's code would set the later changes' timers, and the replay would fail.
    result = await Replayer(workflows=[ChangesTakenToday], data_converter=dev_env.client.data_converter).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None


def test_every_workflow_recorded_on_todays_code_holds_one_marker_at_most():
    newest = [GENERATIONS[-1], *(max((HISTORIES / family).iterdir(), key=lambda p: int(p.name[1:].split("-")[0]))
                                 for family in ("triage", "plans", "panels"))]
    seen = 0
    for generation in newest:
        for case in sorted(p for p in generation.iterdir() if p.is_dir()):
            for referral in load_export(case):
                for history in referral.all():
                    assert markers(history) in ([], [GENERATION]), f"{case.name}: {markers(history)}"
                    seen += len(markers(history))
    assert seen > 0


def test_every_change_the_workflows_ask_for_is_named_in_one_place_and_asked_through_the_generation():
    asked = set()
    for module in sorted((ROOT / "workflows").glob("*.py")):
        source = module.read_text()
        if module.name == "changes.py":
            continue
        assert "workflow.patched(" not in source and "workflow.deprecate_patch(" not in source, module.name
        asked |= set(re.findall(r"\bpatched\(([A-Z_]+)\)", source))
    assert asked and all(getattr(changes, name) in changes.IN_GENERATION for name in asked)
    assert len(asked) == len(changes.IN_GENERATION)

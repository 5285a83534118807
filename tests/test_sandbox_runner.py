"""What each sandbox setting refuses, and the worker's runner asking a workflow for a command's context once per task."""

from __future__ import annotations

import uuid

import pytest
from temporalio.worker import Worker, WorkflowInstance

from runtime.sandbox import ContextsOncePerTask, SandboxedRunner
from runtime.temporal import workflow_runner
from tests.sandbox_probe import SandboxProbe


class CountingInstance(WorkflowInstance):
    """Stands in for the SDK's sandboxed instance: each answer says how many times it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def activate(self, act):
        return act

    def get_serialization_context(self, command_info):
        self.asked += 1
        return (command_info, self.asked)

    def get_external_store_context(self, command_info):
        self.asked += 1
        return ("store", command_info, self.asked)

    def get_info(self):
        return "info"

    def get_thread_id(self):
        return 7


def test_a_commands_context_is_asked_once_until_the_next_activation():
    inner = CountingInstance()
    instance = ContextsOncePerTask(inner)
    first = instance.get_serialization_context("activity 1")
    assert instance.get_serialization_context("activity 1") == first and inner.asked == 1
    assert instance.get_serialization_context(None) == (None, 2)  # another command is asked on its own
    assert instance.get_external_store_context("activity 1") == ("store", "activity 1", 3)
    assert instance.get_external_store_context("activity 1") == ("store", "activity 1", 3) and inner.asked == 3
    # An activation may change the instance's state: every answer is asked again after it.
    assert instance.activate("activation") == "activation"
    assert instance.get_serialization_context("activity 1") == ("activity 1", 4)
    assert instance.get_external_store_context("activity 1") == ("store", "activity 1", 5)
    assert instance.get_info() == "info" and instance.get_thread_id() == 7


@pytest.mark.parametrize(("mode", "clock", "file"), [
    # Passing modules through keeps the sandbox's builtins (no file is opened) but not its module members: a
    # workflow module imported once, outside the sandbox, calls the real `datetime.now`.
    ("passthrough", "allowed", "refused"),
    # Re-imported into the sandbox for each run, a workflow module's own code is refused both.
    ("reimport", "refused", "refused"),
    ("off", "allowed", "allowed"),
])
async def test_each_sandbox_setting_refuses_what_it_says(dev_env, mode, clock, file):
    runner = workflow_runner(mode)
    assert isinstance(runner, SandboxedRunner) is (mode != "off")
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(dev_env.client, task_queue=queue, workflows=[SandboxProbe], workflow_runner=runner):
        answers = await dev_env.client.execute_workflow(SandboxProbe.run, id=f"probe-{uuid.uuid4().hex[:8]}", task_queue=queue)
    assert answers == {"read the wall clock": clock, "open a file": file}

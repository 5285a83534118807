"""The workflow sandbox, with each command's serialization context asked of it once per workflow task.

For every workflow task the SDK walks the task's payloads three times to open them and the
answer's three times to seal them, and for each payload it asks the workflow instance for
that command's serialization context. Inside the sandbox each such question runs a freshly
compiled snippet in the sandbox's globals: on a referral's histories about a tenth of a
replay's time. The answer depends only on the instance's state, which changes only while
it handles an activation; so between two activations (the answer's sealing, then the next
task's opening) the same question has the same answer, and it is asked once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import temporalio.bridge.proto.workflow_activation
import temporalio.bridge.proto.workflow_completion
import temporalio.converter
import temporalio.workflow
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


class ContextsOncePerTask(WorkflowInstance):
    """A sandboxed workflow instance whose context answers are kept until its next activation."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        # (which question, the command) -> the instance's answer, until its next activation.
        self._answers: dict[tuple[str, Any], Any] = {}

    def activate(
        self, act: temporalio.bridge.proto.workflow_activation.WorkflowActivation
    ) -> temporalio.bridge.proto.workflow_completion.WorkflowActivationCompletion:
        # The instance's state may change from here: nothing asked before is known to hold after.
        self._answers.clear()
        return self._instance.activate(act)

    def get_serialization_context(self, command_info: Any) -> temporalio.converter.SerializationContext | None:
        return self._asked_once("serialization", command_info, self._instance.get_serialization_context)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._asked_once("external store", command_info, self._instance.get_external_store_context)

    def _asked_once(self, question: str, command_info: Any, ask: Callable[[Any], Any]) -> Any:
        key = (question, command_info)
        if key not in self._answers:
            self._answers[key] = ask(command_info)
        return self._answers[key]

    def get_info(self) -> temporalio.workflow.Info:
        return self._instance.get_info()

    def get_thread_id(self) -> int | None:
        return self._instance.get_thread_id()


class SandboxedRunner(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner, its restrictions as configured, its instances asked for contexts once per task."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return ContextsOncePerTask(super().create_instance(det))

"""What every workflow type's client shares: its state by query, a decision as one update named by its key, and Temporal's refusals as typed exceptions."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

import structlog
from temporalio import workflow
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from runtime.metrics import DECISION_SECONDS
from workflows.authority import REJECTION_TYPE
from workflows.models import Decision

log = structlog.get_logger("decisions")

State = TypeVar("State")

# Temporal's answers that leave a decision's fate unknown: it may still be applied, once.
OUTCOME_UNKNOWN = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}


class WorkflowRefusal(Exception):
    """A workflow's refusal, as "field: reason" naming the field it is about and never a submitted value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def field(self) -> str | None:
        return self.reason.split(":", 1)[0] if ":" in self.reason else None


class NoSuchWorkflow(WorkflowRefusal):
    """No workflow has this ID, or the ID is not one its type makes."""


class WorkflowClosed(WorkflowRefusal):
    """The workflow has finished: it takes no more decisions."""


class DecisionRejected(WorkflowRefusal):
    """The workflow's validator refused the decision before anything was written."""

    @property
    def about_who_decides(self) -> bool:
        """A refusal of the decider (their role, agency, rank or proof) rather than of the decision."""
        return self.field is not None and (self.field.startswith("actor.") or self.field == "proof")


class DecisionUnconfirmed(Exception):
    """A decision not confirmed in time: it may still take effect, once; a retry under `key` tells which."""

    def __init__(self, key: str) -> None:
        super().__init__(f"decision {key} not confirmed in time")
        self.key = key


class WorkflowClient(Generic[State]):
    """One workflow type as those outside it see it; each type's module says what is its own.

    `decision_timeout` bounds how long a decision waits for its outcome (None: as long as Temporal takes).
    """

    workflow: ClassVar[type]
    field: ClassVar[str]  # the name of the workflow ID where a reason mentions it
    noun: ClassVar[str]
    closed: ClassVar[str]  # the reason a finished workflow gives for refusing a decision
    id_pattern: ClassVar[re.Pattern[str]]
    example_id: ClassVar[str]
    state_type: ClassVar[type]
    # Each decision the workflow takes and its update, the workflow class's own method: read from
    # the class as Temporal defines it, so a new update needs nothing here.
    updates: ClassVar[Mapping[type[Decision], Callable[..., Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.updates = decisions_taken_by(cls.workflow)

    def __init__(self, client: Client, decision_timeout: float | None = None) -> None:
        self.client = client
        self.decision_timeout = decision_timeout

    @classmethod
    def missing(cls) -> NoSuchWorkflow:
        return NoSuchWorkflow(f"{cls.field}: no such {cls.noun}")

    @classmethod
    def matches(cls, workflow_id: str) -> bool:
        return cls.id_pattern.fullmatch(workflow_id) is not None

    @classmethod
    def update_for(cls, decision: type[Decision]) -> Callable[..., Any]:
        return cls.updates[decision]

    @classmethod
    @contextmanager
    def reaching(cls, workflow_id: str) -> Iterator[None]:
        """Around a call to one workflow: a malformed ID or one Temporal does not know is NoSuchWorkflow."""
        if not cls.matches(workflow_id):
            raise cls.missing()
        try:
            yield
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise cls.missing() from None
            raise

    async def state(self, workflow_id: str) -> State:
        with self.reaching(workflow_id):
            return await self.client.get_workflow_handle(workflow_id).query(self.workflow.state)

    async def decide(self, workflow_id: str, decision: Decision, key: str | None = None) -> State:
        """Run one decision as one update named by its idempotency key: a retry under the same key is the same update.

        A decision not confirmed within `decision_timeout` raises DecisionUnconfirmed with its key
        rather than hanging: the update may still complete, and the same key returns its outcome.
        Its time to an answer is measured by update and outcome (runtime/metrics.py).
        """
        update = self.update_for(type(decision))
        started = time.perf_counter()
        outcome = "failed"
        try:
            state = await self._execute(workflow_id, update, decision, key or uuid.uuid4().hex)
            outcome = "accepted"
            return state
        except (WorkflowRefusal, DecisionUnconfirmed) as answer:
            outcome = next(name for kind, name in DECISION_OUTCOMES if isinstance(answer, kind))
            raise
        finally:
            DECISION_SECONDS.labels(update.__name__, outcome).observe(time.perf_counter() - started)

    async def _execute(self, workflow_id: str, update: Callable[..., Any], decision: Decision, key: str) -> State:
        with self.reaching(workflow_id):
            handle = self.client.get_workflow_handle(workflow_id)
            try:
                return await asyncio.wait_for(handle.execute_update(update, decision, id=key), self.decision_timeout)
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                log.warning("decision_unconfirmed", workflow_id=workflow_id, update=update.__name__)
                raise DecisionUnconfirmed(key) from None
            except WorkflowUpdateFailedError as error:
                cause = error.cause
                if isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE:
                    raise DecisionRejected(cause.message) from None
                raise
            except RPCError as error:
                if error.status in OUTCOME_UNKNOWN:
                    raise DecisionUnconfirmed(key) from None
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
            # Not found: either no such workflow, or it has finished and takes no more updates.
            await handle.describe()
            raise WorkflowClosed(self.closed)


# A decision's outcome as the decision-latency histogram labels it, most specific first.
DECISION_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (DecisionRejected, "rejected"),
    (WorkflowClosed, "closed"),
    (NoSuchWorkflow, "not_found"),
    (DecisionUnconfirmed, "unconfirmed"),
    (WorkflowRefusal, "refused"),
)


def decisions_taken_by(workflow_class: type) -> dict[type[Decision], Callable[..., Any]]:
    """Each decision model the workflow's updates take, and the update that takes it (one model, one update)."""
    definition = workflow._Definition.must_from_class(workflow_class)
    taken: dict[type[Decision], Callable[..., Any]] = {}
    for update in definition.updates.values():
        (decision,) = update.arg_types
        if decision in taken:
            raise TypeError(f"{workflow_class.__name__}: {decision.__name__} is taken by two updates")
        taken[decision] = update.fn
    return taken

"""The missing episode workflow's client: its ID from the report's, starting it once per report, its decisions and its state."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from starter.workflow_client import WorkflowClient, WorkflowRefusal
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeState, StartMissingEpisode
from workflows.models import EPISODE_PATTERN, EPISODE_PREFIX, episode_id

EPISODE_ID = re.compile(rf"^{EPISODE_PATTERN}$")


class ReportConflict(WorkflowRefusal):
    """The report's ID already opened an episode, reported by someone else or about another time."""


@dataclass(frozen=True)
class MissingIntake:
    """A missing report's episode, and whether this report opened it."""

    state: EpisodeState
    created: bool


# How long a report's answer waits for the episode to read the child's history (the count, the trigger plan), so
# the reporter sees the plan at once; past it, the answer goes without and the episode's state shows it later.
CHILD_HISTORY_WAIT = 5.0


class MissingEpisodes(WorkflowClient[EpisodeState]):
    workflow = MissingEpisodeWorkflow
    field = "episode_id"
    noun = "missing episode"
    closed = "phase: the episode is closed"
    id_pattern = EPISODE_ID
    example_id = f"{EPISODE_PREFIX}XXXXX-XXXXX"
    state_type = EpisodeState

    @staticmethod
    def workflow_id(report_id: uuid.UUID) -> str:
        """The episode's ID, made from its report's ID alone: the same report finds the same episode."""
        return episode_id(report_id)

    async def with_child_history(self, episode: str) -> EpisodeState:
        """The episode's state once it has read its child's trigger plan, or as it is after CHILD_HISTORY_WAIT."""
        deadline = asyncio.get_running_loop().time() + CHILD_HISTORY_WAIT
        state = await self.state(episode)
        while state.trigger_plan_required is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            state = await self.state(episode)
        return state

    async def report(self, start: StartMissingEpisode, task_queue: str) -> MissingIntake:
        """Start the report's episode; the same report again finds it (created False).

        The report's ID with another reporter or another time missing is ReportConflict.
        """
        report = start.report
        episode = self.workflow_id(report.report_id)
        try:
            await self.client.start_workflow(
                MissingEpisodeWorkflow.run,
                start,
                id=episode,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            created = True
        except WorkflowAlreadyStartedError:
            created = False
        state = await self.with_child_history(episode)
        if not created and (state.reported_by != start.reported_by.id or state.missing_since != report.missing_since):
            raise ReportConflict("report_id: this report was already made with other content")
        return MissingIntake(state, created)

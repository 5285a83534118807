"""A child's trigger plan's data: the plan and its police section, every decision on it, and its state.

A trigger plan is children's social care's plan for a child who goes missing: owned by a named
social worker (whose manager hears of it when it is out of date), with a section telling police
where to look first, who the child may be with, the places they go and the phone to try. Its free
text is child data: it lives in sealed payloads and the read model, never in IDs, logs or errors.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, model_validator

from workflows.models import (
    ActionOwner,
    ActionState,
    Actor,
    Agency,
    AwareDatetime,
    DeadlineDatetime,
    Decision,
    DecisionProof,
    Escalation,
    HistoryEntry,
    MissingChild,
    Model,
    ShortText,
    SlaPolicy,
    Text,
)

# The step whose lateness climbs the ladder: the plan's review (an escalation's subject), as alerts name it.
PLAN_REVIEW = "plan_review"
PLAN_STEPS = {PLAN_REVIEW: "review of a child's trigger plan"}


class PoliceActivity(Model):
    """What police do first when the child goes missing."""

    where_to_look_first: Text
    may_be_with: Text | None = Field(default=None, description="people the child may be with")
    places: Text | None = Field(default=None, description="places the child goes")
    phone: ShortText | None = Field(default=None, description="the child's phone, to call or trace")


class TriggerPlan(Model):
    """One version of the plan: its owner (a social worker, with the manager who hears when it is late), what
    triggers the child's going missing, the police section, and when it is next reviewed."""

    owner: ActionOwner
    triggers: Text | None = Field(default=None, description="what leads the child to go missing")
    police_activity: PoliceActivity
    review_by: DeadlineDatetime = Field(
        description="the plan is reviewed by then, or the owner's manager is alerted (a date alone: the end of that day)"
    )

    @model_validator(mode="after")
    def _owned_by_a_social_worker(self) -> "TriggerPlan":
        if self.owner.agency is not Agency.CHILDRENS_SOCIAL_CARE:
            raise ValueError("owner.agency: a trigger plan is owned by children's social care")
        if self.owner.supervisor is None:
            raise ValueError("owner.supervisor: the social worker's manager is alerted when the plan is out of date")
        return self


# --- decisions on a plan (each a workflow update) ----------------------------------------------


class TriggerPlanRequest(Model):
    """A child's first trigger plan: who the child is (matched by identity key only) and the plan."""

    child: MissingChild
    plan: TriggerPlan


class PlanRevision(Decision):
    """A new version of the plan (a review, or an addendum folded in): the version it replaces is kept."""

    plan: TriggerPlan
    folds_in: list[int] = Field(
        default_factory=list, max_length=50, description="the police addenda (by number) this version takes in"
    )


class PoliceAddendum(Decision):
    """Information police add to the plan at once; with `fold_in`, the social worker is asked to take it into
    the plan (an agreed action owned by children's social care, due within the policy's time)."""

    information: Text
    fold_in: bool = True


class PlanEnding(Decision):
    """The plan is no longer needed (the child has moved away, no longer goes missing); a new version brings it back."""

    reason: Text


# --- what the plan reports ---------------------------------------------------------------------


class PlanVersion(Model):
    version: int
    plan: TriggerPlan
    written_by: str
    written_at: datetime


class AddendumState(Model):
    number: int
    information: str
    added_by: str
    added_at: datetime
    fold_in_action_id: str | None = None
    folded_into: int | None = Field(default=None, description="the plan version that took it in")


class TriggerPlanState(Model):
    plan_id: str
    current: PlanVersion
    versions: list[PlanVersion] = Field(default_factory=list, description="every version, oldest first")
    addenda: list[AddendumState] = Field(default_factory=list)
    review_overdue: bool = False
    ended_at: datetime | None = None
    actions: list[ActionState] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)


class CarriedPlan(Model):
    """What a plan carries into its next run when its history grows long (continue-as-new)."""

    state: TriggerPlanState
    last_seq: int = Field(description="the last fact's number: the next run's facts go on from it")


class StartTriggerPlan(Model):
    child: MissingChild
    plan: TriggerPlan
    written_by: Actor
    sla_policy: SlaPolicy | None = Field(
        default=None, description="omitted: the worker's configured policy is loaded by an activity"
    )
    proof: DecisionProof | None = Field(default=None, description="set by the API's client, never by a caller")
    carried: CarriedPlan | None = Field(default=None, description="set by the plan itself when it continues as new")


class PlanStartProofCheck(Model):
    """A trigger plan's start, checked against its proof before anything is recorded."""

    workflow_id: str
    workflow_type: str
    start: StartTriggerPlan


class TriggerPlanView(Model):
    """A child's trigger plan as a missing episode shows it to the tracing officers: read when it is reported."""

    plan_id: str
    version: int
    owner: ActionOwner
    police_activity: PoliceActivity
    addenda: list[str] = Field(default_factory=list, description="police addenda not yet folded in, oldest first")
    review_by: datetime
    current: bool = Field(description="not past its review date when the episode read it")


class TriggerPlanQuery(Model):
    """The trigger plan of a missing episode's child, read as at `at` (its report's time)."""

    episode_id: str
    at: datetime


class TriggerPlanFound(Model):
    plan: TriggerPlanView | None = None


def review_date_problem(plan: TriggerPlan, now: datetime, policy: SlaPolicy, field: str = "plan.review_by") -> str | None:
    """"field: reason" when the plan's review date is past at `now`, or further ahead than the policy allows."""
    within = policy.missing.trigger_plan_review_within_days
    if plan.review_by <= now:
        return f"{field}: must be in the future"
    if plan.review_by > now + timedelta(days=within):
        return f"{field}: must be within {within} days"
    return None

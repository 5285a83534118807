"""The changes to the workflows that running and recorded workflows must take or not take, by id.

A change that would alter what an older history replays is made behind `patched(ID)`: a run
recorded before the change replays without it, a run started since takes it. Each id is
asked with `workflow.patched` the first time a run reaches it, which records a marker (and
the server's `TemporalChangeVersion` search attribute) in the history: a referral taken to
closure with three agreed actions asked 20, each with its attribute update, 40 of its 216
events, every one a write to Temporal's store and an event every audit replays.

A run started on today's code takes every change below, so it asks once: `patched` first
asks for `GENERATION`, whose marker says "every change up to here", and a run that has it
takes them all without a marker of its own for each. A history recorded before
`GENERATION` has no such marker, so for it `GENERATION` is false wherever it is asked, and
each change is asked on its own exactly as it was when that history was recorded: the same
commands, the same markers found.

A change made after this generation is not in `IN_GENERATION`: `patched` asks it on its
own (one more marker per run) until a new generation takes it in, with a new id and the
old generation's changes kept in its set. A history of the previous generation
(`PREVIOUS_GENERATION`) has that marker, not this one, and takes the previous set.

A change in `ONLY_WITH_GENERATION` is never asked on its own: only a run holding this
generation's marker takes it, so a run started before keeps the old way to its end. Local
recording is one: its marker must be the first of a run, recorded before any local
activity's, and a generation's marker is asked at a run's first change, before the first fact.
"""

from __future__ import annotations

from temporalio import workflow

# --- Every workflow's recording and alerts ------------------------------------------------
# Histories from before quarantine never saw a quarantined fact; the reaction to one is new.
QUARANTINE_PATCH = "quarantined-facts"
# Workflows started since write every waiting fact in one activity; before, one activity per fact.
BATCHED_RECORDING_PATCH = "batched-recording"
# Workflows started since record through `record_facts`, which writes an escalation's in-app alert with its fact.
IN_APP_WITH_FACT_PATCH = "in-app-alert-with-fact"
# Histories recorded before alerts existed replay without the delivery activity.
ALERTS_PATCH = "escalation-alerts"

# --- Referrals ----------------------------------------------------------------------------
# Referrals started since then check their start's proof before anything is recorded, and take
# an agreed action's completion only from the action's result, never from a signal.
DECISION_PROOFS_PATCH = "decision-proofs"
# Referrals started from here on refuse a start whose form names someone other than its submitter.
IDENTITY_FROM_TOKEN_PATCH = "identity-from-token"
# A decision moves the referral on before its agreed actions' workflows start (histories before this: after).
STAGE_BEFORE_ACTIONS = "stage-before-actions"
# Referrals closed from here on resolve the escalations still open on them (histories before this left them open).
CLOSURE_RESOLVES_ESCALATIONS = "closure-resolves-escalations"
# Referrals started since then run their deadlines from the submission and each stage from its decision's own time.
DEADLINES_FROM_SUBMISSION = "deadlines-from-submission"
# Referrals started since then have their start's proof checked by the activity writing their first facts.
START_PROOF_WITH_FACTS_PATCH = "start-proof-with-facts"
# Referrals whose VIST is approved since then read the screening view in the activity recording the approval.
SCREENING_VIEW_WITH_FACTS_PATCH = "screening-view-with-facts"
# Referrals from here on wait for their agreed actions' last answers before they close.
ACTIONS_FINISH_FIRST = "actions-finish-first"
# Strategy discussions recorded from here on are quorate only with the policy's named roles present.
NAMED_ATTENDANCE_PATCH = "named-attendance"
# Screening views loaded from here on reach back over the policy's look-back about the children.
LONG_LOOK_BACK_PATCH = "long-look-back"
# Referrals from here on alert a plan's social worker when the screening view finds the child on it.
PLAN_ALERTS_PATCH = "child-on-plan-alerts"
# A partner agency's referral opens at screening (no VIST to review), its form checked against its referrer.
PARTNER_REFERRALS_PATCH = "partner-referrals"
# Screenings from here on that inform children's social care agree the police's notification as an action.
CSC_NOTIFICATION_PATCH = "csc-notification"

# --- Agreed actions -----------------------------------------------------------------------
# Actions completed from here on send their referral no signal: it takes a completion from the result alone.
COMPLETION_BY_RESULT_PATCH = "completion-by-result"

# --- Missing episodes ---------------------------------------------------------------------
# Episodes started before the repeat-missing count replay without its activity.
REPEAT_MISSING_PATCH = "repeat-missing-count"
# Episodes started before trigger plans replay without reading one.
TRIGGER_PLAN_PATCH = "trigger-plan"
# Episodes started before a CSE concern linked them to the child's referrals replay without looking for one.
CSE_LINK_PATCH = "cse-referral-link"

# --- Recording, since the local-recording generation ----------------------------------------
# Workflows started since write each batch of facts as a local activity inside the workflow task that made
# them, echoing the facts in its result for the history; a batch the database does not take at once (slow,
# down) goes to the `record_facts` activity as before.
LOCAL_RECORDING_PATCH = "local-recording"
# Workflows started since start every action a decision agrees in one workflow task, not one task each.
ACTIONS_STARTED_TOGETHER = "actions-started-together"

# The generation before this one: every change up to the CSC notification.
PREVIOUS_GENERATION = "changes-through-csc-notification"
IN_PREVIOUS_GENERATION = frozenset({
    QUARANTINE_PATCH,
    BATCHED_RECORDING_PATCH,
    IN_APP_WITH_FACT_PATCH,
    ALERTS_PATCH,
    DECISION_PROOFS_PATCH,
    IDENTITY_FROM_TOKEN_PATCH,
    STAGE_BEFORE_ACTIONS,
    CLOSURE_RESOLVES_ESCALATIONS,
    DEADLINES_FROM_SUBMISSION,
    START_PROOF_WITH_FACTS_PATCH,
    SCREENING_VIEW_WITH_FACTS_PATCH,
    ACTIONS_FINISH_FIRST,
    NAMED_ATTENDANCE_PATCH,
    LONG_LOOK_BACK_PATCH,
    PLAN_ALERTS_PATCH,
    PARTNER_REFERRALS_PATCH,
    CSC_NOTIFICATION_PATCH,
    COMPLETION_BY_RESULT_PATCH,
    REPEAT_MISSING_PATCH,
    TRIGGER_PLAN_PATCH,
    CSE_LINK_PATCH,
})

# Every change above: a run started with `GENERATION`'s marker takes them all.
GENERATION = "changes-through-local-recording"
ONLY_WITH_GENERATION = frozenset({LOCAL_RECORDING_PATCH, ACTIONS_STARTED_TOGETHER})
IN_GENERATION = IN_PREVIOUS_GENERATION | ONLY_WITH_GENERATION


def patched(change: str) -> bool:
    """Whether this run takes `change`: for a run of this generation always, asking once for
    all; for a run of the previous generation, each change of its set; for a run recorded
    before both, as `workflow.patched(change)` answered when recorded."""
    if change in IN_GENERATION and workflow.patched(GENERATION):
        return True
    if change in ONLY_WITH_GENERATION:
        return False
    if change in IN_PREVIOUS_GENERATION and workflow.patched(PREVIOUS_GENERATION):
        return True
    return workflow.patched(change)

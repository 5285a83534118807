"""Who may make which decision, and how a rejected decision is reported.

Checked inside the workflows' update validators, so a decision is refused whichever way it
arrives (API, CLI, or a direct update). Three tables, read and tested as a whole: the role
sets (the role matrix), the rung rule (rank, named addressee, administrator) and the
separation of duties (who may not make a decision because of one they made before).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from temporalio.exceptions import ApplicationError

from workflows.models import Actor, Agency, Rank, Role

# --- the role matrix ------------------------------------------------------------------------

REVIEWERS = frozenset({Role.SUPERVISOR})
OFFICERS = frozenset({Role.OFFICER})
SUBMITTERS = OFFICERS | REVIEWERS
SCREENERS = frozenset({Role.SCREENER})
CASE_DECIDERS = frozenset({Role.SCREENER, Role.SUPERVISOR})
OVERRIDE_REQUESTERS = SCREENERS
OVERRIDE_DECIDERS = REVIEWERS
# A screening may leave children's social care uninformed only on a supervisor's own decision, with a rationale.
CSC_NOT_INFORMED_DECIDERS = REVIEWERS
# A partner agency's staff refer a child straight to screening (their agency must be one that refers: the form's rule).
PARTNER_REFERRERS = frozenset({Role.PARTNER})
# Supervisors acknowledge rungs of their rank or below; administrators any rung. A rung's
# named addressee may acknowledge it whatever their role (see `rung_refusal`).
ACKNOWLEDGERS = frozenset({Role.SUPERVISOR, Role.ADMIN})
# Staff of the owning agency complete its actions; CRU/MASH staff and supervisors any action.
COMPLETERS_OF_OWN_AGENCY = frozenset({Role.OFFICER, Role.PARTNER, Role.SCREENER, Role.SUPERVISOR})
COMPLETERS_OF_ANY_AGENCY = frozenset({Role.SCREENER, Role.SUPERVISOR})
REASSIGNERS = frozenset({Role.SCREENER, Role.SUPERVISOR})
# A missing episode: reported by police staff (officers, the CRU, supervisors) or the call handler who
# took the call, traced by police staff; found by officers or supervisors; reviewed (and a low grade kept)
# by supervisors; its return-home interview recorded by children's social care (its own staff), the
# CRU/MASH or a supervisor.
TRACERS = frozenset({Role.OFFICER, Role.SCREENER, Role.SUPERVISOR})
MISSING_REPORTERS = TRACERS | {Role.CALL_HANDLER}
FINDERS = frozenset({Role.OFFICER, Role.SUPERVISOR})
EPISODE_REVIEWERS = REVIEWERS
INTERVIEW_RECORDERS = frozenset({Role.PARTNER, Role.SCREENER, Role.SUPERVISOR})
# A child's trigger plan: written, revised and ended by children's social care (a social worker, the MASH's
# screeners of that agency: `require_agency`); police add to it at once (officers, the CRU, supervisors).
PLAN_WRITERS = frozenset({Role.PARTNER, Role.SCREENER})
ADDENDUM_WRITERS = TRACERS
# Those who read cases: every role but partners (who see their own agency's agreed actions) and call handlers
# (who take reports and read no case; a report's own answer is theirs).
CASE_READERS = frozenset(Role) - {Role.PARTNER, Role.CALL_HANDLER, Role.SYSTEM}
# Who reads trigger plans: every role that reads cases, and children's social care's partners (their own plans).
PLAN_READERS = CASE_READERS | {Role.PARTNER}
# Who sees which children go missing most often: those who act on it and those who check it.
FREQUENCY_READERS = frozenset({Role.SUPERVISOR, Role.SCREENER, Role.AUDITOR})
# Who may ask whether an address has children at risk before attending it: police on duty and the CRU.
ADDRESS_ENQUIRERS = frozenset({Role.OFFICER, Role.SUPERVISOR, Role.SCREENER})
# The daily domestic-abuse triage's decision makers: CRU/MASH screeners and supervisors.
TRIAGE_DECIDERS = CASE_DECIDERS
# A panel's sitting: its agenda edited and attendance recorded by CRU/MASH staff and supervisors; the
# meeting opened and closed, and each case decided, by its chair, a supervisor (whose grade the child's
# live case takes as its own regrade: a missing episode is regraded by supervisors only).
PANEL_COORDINATORS = CASE_DECIDERS
PANEL_CHAIRS = REVIEWERS
# Who opens a day's triage by hand (the schedule opens it at 07:00 on working days).
TRIAGE_OPENERS = TRIAGE_DECIDERS | {Role.ADMIN}

REJECTION_TYPE = "DecisionRejected"


def reject(message: str) -> ApplicationError:
    """A business rejection: the caller sees the field and the reason; nothing changes."""
    return ApplicationError(message, type=REJECTION_TYPE, non_retryable=True)


def require(actor: Actor, roles: frozenset[Role], action: str) -> None:
    if actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise reject(f"actor.role: a {actor.role.value} may not {action} (allowed: {allowed})")


def agency_refusal(actor: Actor, agency: Agency, action: str) -> str | None:
    """Why `actor` may not `action` for want of being `agency`'s, or None when they are."""
    if actor.agency is agency:
        return None
    return f"actor.agency: {actor.agency.value} staff may not {action} (allowed: {agency.value})"


def require_agency(actor: Actor, agency: Agency, action: str) -> None:
    refusal = agency_refusal(actor, agency, action)
    if refusal is not None:
        raise reject(refusal)


# --- the rung rule ----------------------------------------------------------------------------


def rung_refusal(actor: Actor, rank: Rank, as_named_addressee: bool) -> str | None:
    """Why `actor` may not acknowledge a rung of `rank`, or None when they may.

    A rung is acknowledged by a supervisor of its rank or above, by its named addressee, or
    by an administrator: acknowledging restarts the grace period, so the person a rung
    escalates over must not be able to hold off the next rank.
    """
    if as_named_addressee or actor.role is Role.ADMIN:
        return None
    if actor.role is not Role.SUPERVISOR:
        return (
            f"actor.role: a {actor.role.value} may not acknowledge an escalation "
            "(allowed: a supervisor of the rung's rank or above, its named addressee, an admin)"
        )
    if actor.rank is None or actor.rank.seniority < rank.seniority:
        held = actor.rank.value if actor.rank else "none"
        return (
            f"actor.rank: rank {held} may not acknowledge the {rank.value} rung "
            "(allowed: its rank or above, its named addressee, an admin)"
        )
    return None


def require_rung_authority(actor: Actor, rank: Rank, as_named_addressee: bool) -> None:
    refusal = rung_refusal(actor, rank, as_named_addressee)
    if refusal is not None:
        raise reject(refusal)


# --- separation of duties ---------------------------------------------------------------------


class Duty(StrEnum):
    """A decision on a case (a referral, a missing episode) whose maker the separation of duties remembers."""

    SUBMIT_VIST = "submit or resubmit the VIST"
    REVIEW_VIST = "review the VIST"
    REQUEST_OVERRIDE = "ask for the repeat-referral override"
    DECIDE_OVERRIDE = "grant or refuse the repeat-referral override"
    GRADE_LOW = "grade the missing episode low"
    KEEP_LOW_GRADE = "keep the missing episode's low grade"


@dataclass(frozen=True)
class Separation:
    """Whoever performed `earlier` on a referral may not perform `later` on it."""

    earlier: Duty
    later: Duty


# Every separation of duties, in one place (four eyes on each).
SEPARATION_OF_DUTIES = (
    Separation(Duty.SUBMIT_VIST, Duty.REVIEW_VIST),
    Separation(Duty.REQUEST_OVERRIDE, Duty.DECIDE_OVERRIDE),
    Separation(Duty.GRADE_LOW, Duty.KEEP_LOW_GRADE),
)


def require_separation(actor: Actor, duty: Duty, performed: Mapping[Duty, Collection[str]]) -> None:
    """Refuse `duty` to an actor who performed a duty it must be kept apart from; `performed` maps duty -> staff IDs."""
    for rule in SEPARATION_OF_DUTIES:
        if rule.later is duty and actor.id in performed.get(rule.earlier, ()):
            raise reject(f"actor.id: {actor.id} did {rule.earlier.value} and so may not {duty.value}")

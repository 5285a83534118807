"""Who may make which decision, and how a rejected decision is reported.

Checked inside the workflows' update validators, so a decision is refused whichever way it
arrives (API, CLI, or a direct update).
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from workflows.models import Actor, Role

REVIEWERS = frozenset({Role.SUPERVISOR})
OFFICERS = frozenset({Role.OFFICER})
SCREENERS = frozenset({Role.SCREENER})
CASE_DECIDERS = frozenset({Role.SCREENER, Role.SUPERVISOR})
ACKNOWLEDGERS = frozenset({Role.SUPERVISOR})
# Staff of the owning agency complete its actions; CRU/MASH staff and supervisors any action.
COMPLETERS_OF_OWN_AGENCY = frozenset({Role.OFFICER, Role.PARTNER, Role.SCREENER, Role.SUPERVISOR})
COMPLETERS_OF_ANY_AGENCY = frozenset({Role.SCREENER, Role.SUPERVISOR})
REASSIGNERS = frozenset({Role.SCREENER, Role.SUPERVISOR})

REJECTION_TYPE = "DecisionRejected"


def reject(message: str) -> ApplicationError:
    """A business rejection: the caller sees the field and the reason; nothing changes."""
    return ApplicationError(message, type=REJECTION_TYPE, non_retryable=True)


def require(actor: Actor, roles: frozenset[Role], action: str) -> None:
    if actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise reject(f"actor.role: a {actor.role.value} may not {action} (allowed: {allowed})")

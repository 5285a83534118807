"""A person's decision built from what they submitted and who their credentials say they are: one way for the API's
bodies and the dashboard's forms.

What a caller may send is the decision model without `actor`, `proof` or what the API's client sets
(`request_model`); the actor comes from the credentials; the decision's own cross-field rules run as it is built.
A refusal names each field and why, never the value sent (`field_errors`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError, create_model

from workflows.models import Actor, Decision, Model, Resubmission

D = TypeVar("D", bound=Decision)

SET_BY_THE_API = frozenset({"actor", "proof", "made_at", "forwarded"})
# A rule's reason reads "children[0].date_of_birth: is after the incident": the field, then why.
NAMED_FIELD = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_.\[\]]*): (?P<why>.+)$", re.DOTALL)


@functools.cache
def request_model(decision: type[Decision]) -> type[Model]:
    """`decision`'s fields but the actor and its proof, as a strict model named `<Decision>Request` (one per decision).

    A retired field (kept in the decision model, excluded from its dumps, so that recorded
    histories still decode) is left out too: a body carrying it is refused as an unknown field.
    """
    fields = {
        name: (info.annotation, info)
        for name, info in decision.model_fields.items()
        if name not in SET_BY_THE_API and not info.exclude
    }
    return create_model(f"{decision.__name__}Request", __base__=Model, __doc__=decision.__doc__, **fields)


def named_field(reason: str) -> tuple[list[str | int], str]:
    """A rule's reason as the field it names and why: "agreed_actions[0].deadline: is past" is
    (["agreed_actions", 0, "deadline"], "is past"); a reason naming no field is ([], reason)."""
    named = NAMED_FIELD.match(reason)
    if named is None:
        return [], reason
    loc = [int(part) if part.isdigit() else part for part in re.split(r"[.\[\]]+", named["field"]) if part]
    return loc, named["why"]


def field_errors(errors: list[dict[str, Any]], prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic errors without `input`, `ctx` or `url`: the location and the reason, never the value.

    A cross-field rule's message ("Value error, field: why") names its field; that field joins the location.
    """
    cleaned = []
    for error in errors:
        named, why = named_field(error["msg"].removeprefix("Value error, ")) if error["msg"].startswith(
            "Value error, ") else ([], error["msg"])
        cleaned.append({"loc": [*prefix, *error["loc"], *named], "msg": why, "type": error["type"]})
    return cleaned


class DecisionInvalid(Exception):
    """What was submitted does not make the decision: each error's `loc` names the field, `msg` says why."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def build_decision(decision: type[D], submitted: Mapping[str, Any], actor: Actor) -> D:
    """The decision from a request's fields and the credentials' actor, or DecisionInvalid naming every bad field.

    The fields are read as the decision's request model reads them, so a field the caller may not set (the actor,
    a proof) is refused; the decision's own rules then run with the actor in place. A resubmitted VIST may name as
    its officer only the actor submitting it.
    """
    try:
        body = request_model(decision).model_validate(dict(submitted))
        made = decision.model_validate(dict(body) | {"actor": actor})
    except ValidationError as error:
        raise DecisionInvalid(field_errors(error.errors())) from None
    if isinstance(made, Resubmission) and made.submission.officer_id != actor.id:
        raise DecisionInvalid([{"loc": ["submission", "officer_id"], "type": "value_error",
                                "msg": "must be the caller's own staff ID: who submits comes from the credentials"}])
    return made

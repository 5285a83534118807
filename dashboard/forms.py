"""The dashboard's forms: each field named by its place in a model ("attendees.0.name"), read into the model's shape,
and each refusal shown beside the field it names.

A page's form posts its fields with the session's CSRF token (`board.posted_form`) and an idempotency key made when
the page was drawn (`idempotency_key`), so the same form sent twice is applied once. `nested` reads the fields into
what a model validates; `Submitted` carries what was sent and why it was refused back to the page, where the macros
of templates/forms.html put each error beside its field (`aria-describedby`) and keep what the person wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
# Times and dates as people write them in a form's text field; a time without an offset is London time.
WRITTEN_TIMES = ("%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
WRITTEN_DATES = ("%d/%m/%Y",)
# The fields a form carries for the dashboard itself, never part of what it decides.
CONTROL_FIELDS = frozenset({"csrf_token", "idempotency_key"})


def as_written(value: str) -> str:
    """A time written "26/11/2026 10:00" (or "2026-11-26 10:00") as London time with its offset, a date written
    "26/11/2026" as 2026-11-26; any other text as written, for the model to judge."""
    for written in WRITTEN_TIMES:
        try:
            return datetime.strptime(value, written).replace(tzinfo=LONDON).isoformat()
        except ValueError:
            pass
    for written in WRITTEN_DATES:
        try:
            return datetime.strptime(value, written).date().isoformat()
        except ValueError:
            pass
    return value


def written_date(value: str) -> date | None:
    """A date as written in a form ("26/11/2026" or "2026-11-26"), or None when it is no date."""
    try:
        return date.fromisoformat(as_written(value.strip()))
    except ValueError:
        return None


def nested(fields: Mapping[str, str]) -> dict[str, Any]:
    """Form fields in the shape a model reads: "attendees.0.name" is `{"attendees": [{"name": ...}]}`.

    A blank field is left out, so the model's default (or its "required") applies; a row of a list left wholly
    blank is no row (lists close up in the order of their numbers); times and dates are read as people write them
    (`as_written`).
    """
    tree: dict[Any, Any] = {}
    for name, value in fields.items():
        if name in CONTROL_FIELDS or not value.strip():
            continue
        *parents, leaf = [int(part) if part.isdigit() else part for part in name.split(".")]
        node = tree
        for part in parents:
            # A field named both as a value and as a group ("a" and "a.b"), which no page draws: the group stands.
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = as_written(value.strip())
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(key, int) for key in node):
        return [_lists(node[key]) for key in sorted(node)]
    return {key: _lists(value) for key, value in node.items()}


def field_name(loc: list[str | int] | tuple[str | int, ...]) -> str:
    """An error's location as the form names the field: ("attendees", 0, "name") is "attendees.0.name"."""
    return ".".join(str(part) for part in loc)


@dataclass
class Submitted:
    """A form sent back to its page: which form, what was in it, the error beside each field, and its key."""

    form: str
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None

    @classmethod
    def refused(cls, form: str, values: Mapping[str, str], errors: list[dict[str, Any]], key: str | None = None) -> Submitted:
        """The form with each error under its field's name (the first error of a field is the one shown)."""
        by_field: dict[str, str] = {}
        for error in errors:
            by_field.setdefault(field_name(error["loc"]), error["msg"])
        return cls(form, {k: v for k, v in values.items() if k not in CONTROL_FIELDS}, by_field, key)

    def value(self, form: str, name: str) -> str:
        """What the person wrote in this field of this form, to show again; blank on any other form."""
        return self.values.get(name, "") if form == self.form else ""

    def error(self, form: str, name: str) -> str | None:
        return self.errors.get(name) if form == self.form else None


def field_id(form: str, name: str) -> str:
    """The HTML id of a form's field: "strategy-attendees-0-name"."""
    return f"{form}-{name.replace('.', '-')}"


def field_label(name: str) -> str:
    """A field's name as an error summary reads it: "attendees.0.name" is "attendees 1, name"."""
    parts = name.split(".") if name else []
    named = [f"{part.replace('_', ' ')} {int(after) + 1}" if after.isdigit() else part.replace("_", " ")
             for part, after in zip(parts, [*parts[1:], ""]) if not part.isdigit()]
    return ", ".join(named) or "the decision"

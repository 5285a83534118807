"""The dashboard's form fields read into a model's shape: lists by number, blanks left out, times as people write them."""

from __future__ import annotations

from dashboard.forms import Submitted, as_written, field_label, nested


def test_fields_named_by_their_place_make_the_models_shape():
    fields = {
        "csrf_token": "t", "idempotency_key": "k", "rationale": " Synthetic. ",
        "attendees.0.name": "A", "attendees.0.agency": "police",
        "attendees.1.name": "", "attendees.1.agency": "",  # a row left blank is no row
        "attendees.3.name": "B",  # the rows close up in the order of their numbers
        "agencies_informed.2": "health", "agencies_informed.0": "police",
        "risk": "   ",
    }
    assert nested(fields) == {
        "rationale": "Synthetic.",
        "attendees": [{"name": "A", "agency": "police"}, {"name": "B"}],
        "agencies_informed": ["police", "health"],
    }
    # A field named both as a value and as a group, which no page draws, gives the model a shape to refuse.
    assert nested({"a": "x", "a.b": "y"}) == {"a": {"b": "y"}}


def test_times_and_dates_are_read_as_people_write_them_in_london():
    assert as_written("26/11/2026 14:30") == "2026-11-26T14:30:00+00:00"
    assert as_written("01/07/2026 09:00") == "2026-07-01T09:00:00+01:00"  # summer time
    assert as_written("2026-07-01 09:00") == "2026-07-01T09:00:00+01:00"
    assert as_written("04/03/2018") == "2018-03-04"
    for other in ("31/02/2026 10:00", "tomorrow", "2026-11-26T10:00:00+05:00"):
        assert as_written(other) == other  # left for the model to judge


def test_a_refused_form_keeps_what_was_written_and_puts_each_error_under_its_field():
    sent = {"csrf_token": "t", "idempotency_key": "k", "rationale": "R", "attendees.0.name": ""}
    errors = [{"loc": ["attendees", 0, "name"], "msg": "Field required"}, {"loc": ["attendees", 0, "name"], "msg": "x"},
              {"loc": [], "msg": "a rule about the whole decision"}]
    back = Submitted.refused("strategy", sent, errors, "k")
    assert back.values == {"rationale": "R", "attendees.0.name": ""}  # never the CSRF token
    assert back.error("strategy", "attendees.0.name") == "Field required" and back.error("screening", "rationale") is None
    assert back.value("strategy", "rationale") == "R" and back.value("review", "rationale") == ""
    assert [field_label(name) for name in back.errors] == ["attendees 1, name", "the decision"]

"""Times as people write them: without an offset a time is London's (summer time too); a deadline written as a
date is the end of that day in London; a moment written as a date alone is refused, naming the field."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from workflows.models import AgreedActionSpec, StrategyDiscussion

LONDON = ZoneInfo("Europe/London")
OWNER = {"agency": "police", "owner": "DC Synthetic"}


def deadline_of(written: str) -> datetime:
    return AgreedActionSpec.model_validate({"description": "Synthetic.", "owner": OWNER, "deadline": written}).deadline


@pytest.mark.parametrize(("written", "meant"), [
    ("2026-12-01", datetime(2026, 12, 1, 23, 59, tzinfo=LONDON)),  # a date where a date is meant: by the end of it
    ("2026-07-01", datetime(2026, 7, 1, 23, 59, tzinfo=LONDON)),  # in summer time too
    ("2026-07-01T09:00", datetime(2026, 7, 1, 9, 0, tzinfo=LONDON)),  # no offset: London's, 08:00 UTC
    ("2026-12-01T09:00", datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)),
    ("2026-07-01T09:00:00+02:00", datetime(2026, 7, 1, 8, 0, tzinfo=LONDON)),  # an offset given is kept
])
def test_a_deadline_is_read_as_written_in_london(written, meant):
    assert deadline_of(written) == meant
    assert deadline_of(written).utcoffset() is not None


def test_a_moment_written_as_a_date_alone_is_refused_naming_its_field():
    with pytest.raises(ValidationError) as refused:
        StrategyDiscussion.model_validate({
            "actor": {"id": "CRU-3001", "role": "screener"}, "held_at": "2026-11-26", "attendees": [],
            "section_47": False, "rationale": "Synthetic."})
    errors = {tuple(e["loc"]): e["msg"] for e in refused.value.errors()}
    assert "needs a time of day as well as the date" in errors[("held_at",)]

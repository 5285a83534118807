"""Searchable logs: a worker's lines for a referral that escalates keep constant event names and their fields as fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from random import Random

import pytest
import structlog

from runtime.logging import configure_logging, log_handler
from starter.synthetic import approval, synthetic_vist
from tests.helpers import advance_to, start_referral, state_when
from workflows.models import ReferralState, Stage
from workflows.referral import ReferralWorkflow


@pytest.fixture
def worker_log() -> Iterator[io.StringIO]:
    """Everything logged in this process while the test runs, as the worker renders it in production (JSON lines)."""
    root = logging.getLogger()
    handlers, level, structlog_config = root.handlers[:], root.level, structlog.get_config()
    configure_logging("INFO", "json")
    # Uncached, so that every logger reads the configuration restored after the test.
    structlog.configure(cache_logger_on_first_use=False)
    lines = io.StringIO()
    root.addHandler(log_handler(as_json=True, stream=lines))
    yield lines
    root.handlers, root.level = handlers, level
    structlog.configure(**structlog_config)


def escalated(state: ReferralState) -> bool:
    return len(state.escalations) == 1


async def test_an_escalation_is_logged_as_one_constant_event_with_its_fields(worker_log, time_env, time_queue, sla_policy):
    submission = synthetic_vist(rng=Random("structured-logs"))
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, submission=submission)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    assert state.stage is Stage.SCREENING
    await advance_to(time_env, state.deadline + timedelta(minutes=1))
    escalation = (await state_when(handle, escalated)).escalations[0]

    records = [json.loads(line) for line in worker_log.getvalue().splitlines()]
    raised = [r for r in records if r.get("reference") == handle.id and r["event"] == "escalation_raised"]
    assert len(raised) == 1
    line = raised[0]
    # The fields are fields: the escalation's, and the workflow's context lifted out of the SDK's `extra`.
    assert line["rung"] == escalation.rung
    assert line["escalation_id"] == escalation.escalation_id
    assert line["rank"] == escalation.rank.value
    assert line["subject"] == escalation.subject
    assert line["reason"] == "overdue"
    assert line["workflow_id"] == handle.id
    assert line["workflow_type"] == "ReferralWorkflow"
    assert line["logger"] == "temporalio.workflow"
    assert "temporal_workflow" not in line
    # An activity's lines carry the workflow that scheduled it, bound for the activity's run.
    recorded = [r for r in records if r["event"] == "fact_recorded" and r.get("reference") == handle.id]
    assert recorded and all(r["workflow_id"] == handle.id and r["activity_type"] == "record_facts" for r in recorded)
    # Every line of the SDK's loggers has its event text alone: no context folded into it.
    temporal = [r for r in records if r.get("logger", "").startswith("temporalio")]
    assert temporal and not [r["event"] for r in temporal if "{" in r["event"] or handle.id in r["event"]]
    # No personal data reached the log: neither the child's name, date of birth nor address.
    child = submission.children[0]
    text = worker_log.getvalue()
    for personal in (child.name, child.name.split()[-1], child.date_of_birth.isoformat(), submission.incident.location):
        assert personal not in text


def test_a_stdlib_line_with_arguments_keeps_its_template_as_the_event(worker_log):
    # uvicorn's, the SDK's or any library's: the same event however its values vary.
    for pid in (101, 202):
        logging.getLogger("uvicorn.error").info("Started server process [%d]", pid)
    logging.getLogger("temporalio.worker").warning("no arguments here")
    lines = [json.loads(line) for line in worker_log.getvalue().splitlines()]
    started = [line for line in lines if line["logger"] == "uvicorn.error"]
    assert [(line["event"], line["positional_args"]) for line in started] == [
        ("Started server process [%d]", [101]), ("Started server process [%d]", [202])
    ]
    plain = next(line for line in lines if line["logger"] == "temporalio.worker")
    assert plain["event"] == "no arguments here" and "positional_args" not in plain

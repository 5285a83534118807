"""The fast tier: the workflows on Temporal's time-skipping server, their activities in memory (tests/fast/fakes.py).

No PostgreSQL and no dev server: a fast test that asks for either fails at collection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.proofs import load_decision_verifier
from runtime.settings import Settings
from runtime.temporal import data_converter
from tests.conftest import BIN, SIGNING, TEST_KEYRING
from tests.fast.fakes import (
    Fakes,
    FakeAuditRecords,
    FakeEscalationAlerts,
    FakePanelRecords,
    FakeReferralRecords,
    FakeSlaPolicySource,
    FakeStartProofs,
    FakeTriageRecords,
    Holds,
)
from worker import assemble_worker

REAL_SERVER_FIXTURES = frozenset({"postgres_dsn", "pool", "dev_env", "time_env", "time_queue"})
FAST_QUEUE = "fast-referrals"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(__file__.rsplit("/", 1)[0]):
            wanted = REAL_SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(f"{item.nodeid}: the fast tier runs without {sorted(wanted)}")


@pytest.fixture(scope="session")
async def fast_env() -> AsyncIterator[WorkflowEnvironment]:
    # Sealed and signed as in production: the same codec keys and the same decision signing.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=[SIGNING],
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def session_fakes(fast_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Fakes]:
    """One worker for the session, with the production decision check and every activity faked."""
    verifier = load_decision_verifier(settings)
    holds = Holds()
    fakes = Fakes(FakeReferralRecords(holds), FakeSlaPolicySource(holds), FakeEscalationAlerts(), FakeAuditRecords(),
                  FakeStartProofs(verifier), holds, FakeTriageRecords(), FakePanelRecords())
    fakes.records.proofs = fakes.proofs
    activities = [
        fakes.records.record_event,
        fakes.records.record_events,
        fakes.records.record_facts,
        fakes.records.find_prior_referrals,
        fakes.records.count_missing_episodes,
        fakes.records.find_trigger_plan,
        fakes.records.find_open_referrals,
        fakes.policy.load_sla_policy,
        fakes.alerts.deliver_escalation,
        fakes.audit.draw_monthly_sample,
        fakes.proofs.check_start_proof,
        fakes.proofs.check_episode_start_proof,
        fakes.proofs.check_plan_start_proof,
        fakes.triage.triage_list,
        fakes.panels.panel_agenda,
        fakes.panels.apply_grade,
    ]
    async with assemble_worker(fast_env.client, FAST_QUEUE, activities, verifier):
        yield fakes


@pytest.fixture
def fakes(session_fakes: Fakes) -> Iterator[Fakes]:
    """The session's fakes, with any refusal or screening view an earlier test set cleared.

    Whatever the test held is let go after it, before its referrals are terminated.
    """
    session_fakes.records.refused_kinds.clear()
    session_fakes.records.screening_views.clear()
    session_fakes.records.episode_counts.clear()
    session_fakes.triage.candidates.clear()
    session_fakes.panels.candidates.clear()
    session_fakes.panels.grades.clear()
    yield session_fakes
    session_fakes.holds.release_all()


@pytest.fixture
def fast_queue(fakes: Fakes) -> str:
    return FAST_QUEUE

"""Decisions sent to a running stack's API, the answers counted, and the rows PostgreSQL holds for them.

An accepted decision is one the API answered 2xx. A decision that meets an outage (503, 504,
no answer) is sent again with the same Idempotency-Key until it is answered, as a careful
client would; it must then be applied once, whatever happened in between.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from starter.synthetic import synthetic_vist
from tests.faults.running_stack import CONDITION_TIMEOUT, RunningStack
from workflows.models import RiskGrade, VistSubmission

RETRY_INTERVAL = 1.0
RETRIED_STATUSES = {502, 503, 504}


@dataclass
class Ledger:
    """What the API accepted: referrals created (201), and the keys of decisions answered 2xx by the fact each
    records (a decision answered twice under one key is one decision)."""

    references: list[str] = field(default_factory=list)
    accepted: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    retried: Counter[int | str] = field(default_factory=Counter)
    in_flight: int = 0

    @property
    def decisions(self) -> int:
        return sum(len(keys) for keys in self.accepted.values())


class Referrals:
    """The stack's API as the demo users call it."""

    def __init__(self, stack: RunningStack, client: httpx.AsyncClient, ledger: Ledger, seed: str) -> None:
        self.stack = stack
        self.client = client
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.risks: dict[str, RiskGrade] = {}
        self.forms: dict[str, VistSubmission] = {}

    def auth(self, user: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.stack.token(user)}"}
        return headers | ({"Idempotency-Key": key} if key else {})

    async def submit(self) -> str:
        form = synthetic_vist(rng=self.rng)
        response = await self.send("POST", "/referrals", json=form.model_dump(mode="json"), headers=self.auth("officer"))
        assert response.status_code == 201, response.text
        reference = response.json()["reference"]
        self.ledger.references.append(reference)
        self.forms[reference] = form
        self.risks[reference] = RiskGrade(response.json()["risk"])
        return reference

    async def decide(self, user: str, path: str, body: dict[str, Any], fact: str, key: str | None = None) -> dict:
        """Send one decision until it is answered; count it as accepted (it must be: these decisions are valid)."""
        key = key or str(uuid.uuid4())
        self.ledger.in_flight += 1
        try:
            response = await self.send("POST", path, json=body, headers=self.auth(user, key))
        finally:
            self.ledger.in_flight -= 1
        assert response.is_success, f"{path} with key {key}: {response.status_code} {response.text}"
        self.ledger.accepted[fact].add(key)
        return response.json()

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, sent again unchanged while the stack answers that it cannot (or does not answer)."""
        deadline = asyncio.get_running_loop().time() + CONDITION_TIMEOUT
        while True:
            try:
                response = await self.client.request(method, path, **kwargs)
                if response.status_code not in RETRIED_STATUSES:
                    return response
                self.ledger.retried[response.status_code] += 1
            except httpx.TransportError as error:
                self.ledger.retried[type(error).__name__] += 1
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{method} {path}: no answer but retry within {CONDITION_TIMEOUT:.0f} s")
            await asyncio.sleep(RETRY_INTERVAL)

    async def review(self, reference: str) -> dict:
        return await self.decide(
            "sergeant", f"/referrals/{reference}/supervisor-review", {"approved": True}, "supervisor_reviewed"
        )

    async def regrade(self, reference: str, key: str | None = None) -> dict:
        """Grade the referral high if it is not, else medium."""
        risk = RiskGrade.MEDIUM if self.risks[reference] is RiskGrade.HIGH else RiskGrade.HIGH
        body = {"risk": risk.value, "reason": "Synthetic regrade after new information."}
        state = await self.decide("screener", f"/referrals/{reference}/risk", body, "risk_regraded", key)
        self.risks[reference] = RiskGrade(state["risk"])
        return state

    async def close(self, reference: str) -> dict:
        """Close a reviewed referral at screening (withdrawn): the shortest way to its closure, one decision.

        (Screened out instead, it would wait for its notification to children's social care, an agreed action.)
        """
        body = {"reason": "withdrawn", "note": "Synthetic: withdrawn at screening."}
        return await self.decide("screener", f"/referrals/{reference}/close", body, "closed")

    async def work(self, reference: str, regrades: int, review: bool = True) -> None:
        """Review a new referral, then regrade it back and forth, one decision after another."""
        if review:
            await self.review(reference)
        for _ in range(regrades):
            await self.regrade(reference)


async def recorded(dsn: str, references: list[str]) -> dict[str, int]:
    """What PostgreSQL holds for these referrals: facts by kind, their projections, gaps in any stream, and
    facts quarantined."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM referrals WHERE reference = ANY($1)) AS referrals,
                 (SELECT count(*) FROM submission_versions WHERE reference = ANY($1)) AS versions,
                 (SELECT count(*) FROM referral_events WHERE reference = ANY($1) AND kind = 'supervisor_reviewed')
                     AS reviews,
                 (SELECT count(*) FROM referral_events WHERE reference = ANY($1) AND kind = 'stage_changed')
                     AS stage_facts,
                 (SELECT count(*) FROM stage_transitions WHERE reference = ANY($1)) AS transitions,
                 (SELECT count(*) FROM referral_events WHERE reference = ANY($1) AND kind = 'risk_regraded')
                     AS regrade_facts,
                 (SELECT count(*) FROM risk_regrades WHERE reference = ANY($1)) AS regrades,
                 (SELECT count(*) FROM (
                     SELECT stream FROM referral_events WHERE reference = ANY($1)
                     GROUP BY stream HAVING max(seq) <> count(*)) AS gapped) AS streams_with_gaps,
                 (SELECT count(*) FROM quarantined_facts WHERE reference = ANY($1)) AS quarantined,
                 (SELECT count(*) FROM referrals WHERE reference = ANY($1) AND record_incomplete) AS incomplete""",
            references,
        )
    finally:
        await conn.close()
    return dict(row)


def expected(ledger: Ledger) -> dict[str, int]:
    """The rows the accepted decisions must have left: each once, none more."""
    referrals = len(ledger.references)
    reviews, regrades = len(ledger.accepted["supervisor_reviewed"]), len(ledger.accepted["risk_regraded"])
    return {
        "referrals": referrals,
        "versions": referrals,
        "reviews": reviews,
        "stage_facts": referrals + reviews,
        "transitions": referrals + reviews,
        "regrade_facts": regrades,
        "regrades": regrades,
        "streams_with_gaps": 0,
        # An outage is waited out, never taken for a fact the database refuses.
        "quarantined": 0,
        "incomplete": 0,
    }


async def assert_recorded_once(dsn: str, ledger: Ledger) -> None:
    """Wait (generously) until PostgreSQL holds exactly what was accepted; fail showing both when it never does."""
    deadline = asyncio.get_running_loop().time() + CONDITION_TIMEOUT
    while True:
        counts = await recorded(dsn, ledger.references)
        if counts == expected(ledger):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"recorded {counts}, accepted {expected(ledger)} (retries: {dict(ledger.retried)})")
        await asyncio.sleep(0.5)

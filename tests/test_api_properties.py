"""Property: malformed bodies and query strings sent to every route never give a 500 and never record anything."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import quote
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.routes.decisions import DECISION_ROUTES
from starter.synthetic import OFFICER, screening, strategy_discussion, synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import eventually
from workflows.models import ScreeningOutcome, VistSubmission

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
# Values no field of any body accepts: unknown keys (every model forbids extras), or text past every limit.
POISON = st.one_of(
    st.dictionaries(st.sampled_from(["unexpected", "actor", "zz"]), JSON, min_size=1, max_size=2),
    st.lists(st.dictionaries(st.just("unexpected"), JSON, min_size=1), min_size=1, max_size=2),
    st.just("x" * 5000),
)

# The role that may make each decision: the refusals are about the body, never about the caller.
DECIDER = {"supervisor-review": "sergeant", "resubmission": "officer", "completion": "screener",
           "override": "sergeant", "csc-not-informed": "sergeant"}


def without_actor(decision) -> dict[str, Any]:
    return decision.details()


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON value, the root excluded."""
    found = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.append(prefix + (key,))
        found += paths(child, prefix + (key,))
    return found


def dict_paths(value: Any) -> list[tuple]:
    return [()] + [p for p in paths(value) if isinstance(locate(value, p), dict)]


def locate(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


async def referral_at(api, auth, time_env, seed: int, *steps: tuple[str, str, dict]) -> tuple[VistSubmission, str]:
    submission = synthetic_vist(rng=random.Random(f"api-properties:{seed}"))
    response = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
    assert response.status_code == 201
    reference = response.json()["reference"]
    track(time_env.client, reference)
    for route, user, body in steps:
        step = await api.post(f"/referrals/{reference}/{route}", json=body, headers=auth(user))
        assert step.status_code == 200, step.text
    return submission, reference


async def test_malformed_requests_never_500_and_record_nothing(api, auth, time_env, pool):
    now = await time_env.get_current_time()
    review = ("supervisor-review", "sergeant", {"approved": True})
    _, in_review = await referral_at(api, auth, time_env, 601)
    returned_form, returned = await referral_at(
        api, auth, time_env, 602, ("supervisor-review", "sergeant", {"approved": False, "reasons": "Synthetic."})
    )
    screen_form, in_screening = await referral_at(api, auth, time_env, 603, review)
    discuss_form, in_discussion = await referral_at(
        api, auth, time_env, 604, review,
        ("screening", "screener", without_actor(screening(synthetic_vist(rng=random.Random("api-properties:604")),
                                                          ScreeningOutcome.STRATEGY_DISCUSSION))),
    )
    _, in_conference = await referral_at(
        api, auth, time_env, 605, review,
        ("screening", "screener", without_actor(screening(synthetic_vist(rng=random.Random("api-properties:605")),
                                                          ScreeningOutcome.STRATEGY_DISCUSSION))),
        ("strategy-discussion", "screener", without_actor(strategy_discussion(now, section_47=True, actions=1))),
    )
    action = f"{in_conference}.A1"
    # Each route at a referral (or action) where a well-formed body would be accepted, and that body.
    targets: dict[str, tuple[str, dict]] = {
        "supervisor-review": (in_review, {"approved": False, "reasons": "Synthetic."}),
        "resubmission": (returned, {"submission": form_json(returned_form)}),
        "screening": (in_screening, without_actor(screening(screen_form, ScreeningOutcome.EARLY_HELP))),
        # Not a repeat referral: a well-formed override request or decision is refused there (409).
        "override-request": (in_screening, {"reason": "Synthetic."}),
        "override": (in_screening, {"granted": True, "rationale": "Synthetic."}),
        "csc-not-informed": (in_screening, {"rationale": "Synthetic."}),
        "strategy-discussion": (in_discussion, without_actor(strategy_discussion(now, section_47=True))),
        "conference": (in_conference, {"conference_at": (now + timedelta(days=4)).isoformat(),
                                       "police_attendance": "report_in_lieu", "attendance_rationale": "Synthetic.",
                                       "report_owner": "DC Synthetic"}),
        "conference-outcome": (in_conference, {"held_at": now.isoformat(), "child_protection_plan": False,
                                               "police_attended": True, "rationale": "Synthetic."}),
        "risk": (in_screening, {"risk": "high", "reason": "Synthetic."}),
        "close": (in_screening, {"reason": "withdrawn", "note": "Synthetic."}),
        "completion": (action, {"note": "Synthetic."}),
        "reassignment": (action, {"owner": {"agency": "police", "owner": "DC Synthetic"}, "reason": "Synthetic.",
                                  "deadline": (now + timedelta(days=9)).isoformat()}),
    }
    routes = []
    for route in DECISION_ROUTES:
        target, body = targets[route.path]
        collection = "referrals" if route.target.param == "reference" else "actions"
        # The well-formed body really is one the decision model accepts.
        route.decision.model_validate(body | {"actor": OFFICER})
        required = [name for name, field in route.request.model_fields.items() if field.is_required()]
        routes.append((f"/{collection}/{target}/{route.path}", DECIDER.get(route.path, "screener"), body, required))
    intake_form = form_json(synthetic_vist(rng=random.Random("api-properties:606")))
    routes.append(("/referrals", "officer", intake_form, ["form_id", "incident", "children", "initial_risk",
                                                          "officer_id", "station"]))

    references = [in_review, returned, in_screening, in_discussion, in_conference]

    async def decided(reference: str) -> int:
        # Facts by people; the system's own (escalations as time passes) are not decisions.
        return await pool.fetchval(
            "SELECT count(*) FROM referral_events WHERE reference = $1 AND actor_role <> 'system'", reference
        )

    async def recorded() -> tuple:
        states = [
            (await api.get(f"/referrals/{r}", headers=auth("auditor"))).json() for r in references
        ]
        return (
            await pool.fetchval("SELECT count(*) FROM referrals"),
            [await decided(r) for r in references],
            [(s["stage"], len(s["history"]), s["submission_versions"], s["risk"]) for s in states],
        )

    # The set-up's last facts (the intake of one, the agreed action of another) are recorded.
    await eventually(lambda: decided(in_review), lambda n: n == 1)
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM agreed_actions WHERE action_id = $1", action),
                     lambda n: n == 1)
    before = await recorded()

    loop = asyncio.get_running_loop()
    statuses: list[int] = []

    def send(method: str, path: str, **kwargs) -> int:
        future = asyncio.run_coroutine_threadsafe(api.request(method, path, **kwargs), loop)
        status = future.result(timeout=60).status_code
        statuses.append(status)
        return status

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def malformed_bodies(data: st.DataObject) -> None:
        path, user, body, required = data.draw(st.sampled_from(routes), label="route")
        kind = data.draw(st.sampled_from(["replace", "drop", "null", "extra", "junk", "bytes"]), label="kind")
        headers = auth(user)
        if kind == "replace":
            where = data.draw(st.sampled_from(paths(body)), label="where")
            sent = replaced(body, where, data.draw(POISON, label="value"))
        elif kind in ("drop", "null"):
            key = data.draw(st.sampled_from(required), label="key")
            sent = {k: v for k, v in body.items() if k != key} | ({key: None} if kind == "null" else {})
        elif kind == "extra":
            where = data.draw(st.sampled_from(dict_paths(body)), label="where")
            container = locate(body, where)
            key = data.draw(st.sampled_from(["actor", "unexpected"]) | st.text(min_size=1, max_size=8).filter(
                lambda k: k not in container), label="key")
            sent = replaced(body, where, container | {key: data.draw(JSON, label="value")})
        elif kind == "junk":
            sent = data.draw(JSON, label="body")
        else:
            raw = data.draw(st.binary(max_size=40), label="bytes")
            status = send("POST", path, content=raw, headers=headers | {"Content-Type": "application/json"})
            # Bytes that are not UTF-8 cannot be parsed at all (400); anything else is a 422.
            assert status in (400, 422), (path, raw)
            return
        status = send("POST", path, json=sent, headers=headers)
        # A poisoned unconstrained field (a child_id) can reach the workflow, whose validator refuses it.
        allowed = {409, 422} if kind == "replace" else {422}
        assert status in allowed, (path, kind, status)

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def malformed_queries_and_paths(data: st.DataObject) -> None:
        text = st.text(max_size=30)
        which = data.draw(st.sampled_from(["referrals", "escalations", "reference", "decision"]))
        if which == "referrals":
            params = data.draw(st.dictionaries(st.sampled_from(["stage", "risk", "overdue", "updated_since", "limit",
                                                                 "cursor"]), text, max_size=4))
            status = send("GET", "/referrals", params=params, headers=auth("auditor"))
            assert status in (200, 422)
        elif which == "escalations":
            params = data.draw(st.dictionaries(st.sampled_from(["state", "mine", "reference", "limit", "cursor"]),
                                               text, max_size=4))
            status = send("GET", "/escalations", params=params, headers=auth("sergeant"))
            assert status in (200, 422)
        elif which == "reference":
            segment = data.draw(text.filter(lambda s: s not in ("", ".", "..")))
            status = send("GET", f"/referrals/{quote(segment, safe='')}", headers=auth("auditor"))
            assert status in (404, 405), (segment, status)
        else:
            path, user, body, _ = data.draw(st.sampled_from(routes[:-1]))
            segment = data.draw(text.filter(lambda s: s not in ("", ".", "..")))
            parts = path.split("/")
            parts[2] = quote(segment, safe="")
            status = send("POST", "/".join(parts), json=body, headers=auth(user))
            assert status in (404, 405, 409, 422), (segment, status)

    await asyncio.to_thread(malformed_bodies)
    await asyncio.to_thread(malformed_queries_and_paths)
    assert len(statuses) == 450 and 500 not in statuses
    assert await recorded() == before

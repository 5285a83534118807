"""Every route of the OpenAPI schema and every dashboard page, for every role and none: never a 5xx.

Schemathesis draws the requests from the API's own schema (valid and invalid ones, a fixed
number per route, derandomised so each run sends the same); they go to the app in this
process, on the real time-skipping server and PostgreSQL. Path parameters are drawn, and
drawn again as a live referral's reference, action and escalation, so decisions reach
the workflows' validators too.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app
from dashboard.routes import PAGES
from starter.missing import MissingEpisodes
from starter.panels import PanelSittings
from starter.plans import TriggerPlans
from starter.triage import Triages
from starter.synthetic import screening, strategy_discussion
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import sign_in
from tests.test_api import post, submitted, without_actor
from workflows.models import ScreeningOutcome

# user name per role; None sends no token.
ROLES: dict[str, str | None] = {
    "officer": "officer",
    "supervisor": "sergeant",
    "screener": "screener",
    "partner": "health-partner",
    "auditor": "auditor",
    "admin": "admin",
    "none": None,
}
# Routes that list workflows through Temporal's visibility store, or read and write schedules (a panel's cadence):
# the time-skipping server has neither.
LISTING_ROUTES = {"/audit/reconcile", "/panels", "/panels/{panel_id}", "/panels/{panel_id}/sittings/{day}"}
EXAMPLES = 20  # per route and kind of request: enough to reach each rule, few enough for a short run


def drawn(strategy: Any, examples: int) -> list[Any]:
    """The strategy's first `examples` requests, the same on every run."""
    cases: list[Any] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Any) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:  # nothing to make invalid: a route without parameters or body
        pass
    return cases


def body_of(request: dict[str, Any]) -> dict[str, Any]:
    """The request's body as httpx takes it: JSON, or raw content for anything else."""
    if "json" in request:
        return {"json": request["json"]}
    return {"content": request["data"]} if request.get("data") is not None else {}


async def live_referral(api, auth, time_env, pool, seed: int) -> dict[str, str]:
    """A referral at the conference stage with an agreed action and an open escalation: real path parameters.

    Each test takes its own seed: the same form submitted again later holds another incident time (a 409).
    """
    submission, reference = await submitted(api, auth, time_env, pool, seed)
    await post(api, auth, f"/referrals/{reference}/supervisor-review", "sergeant", {"approved": True})
    await post(api, auth, f"/referrals/{reference}/screening", "screener",
               without_actor(screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)))
    now = await time_env.get_current_time()
    inquorate = strategy_discussion(now, section_47=True, actions=1)
    inquorate.attendees = inquorate.attendees[:1]
    state = await post(api, auth, f"/referrals/{reference}/strategy-discussion", "screener", without_actor(inquorate))
    return {
        "reference": reference,
        "action_id": state["actions"][0]["action_id"],
        "escalation_id": state["escalations"][0]["escalation_id"],
    }


@pytest.fixture
async def listing_api(dev_env, pool, settings, sla_policy, authenticator) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    """The same API on the dev server: the time-skipping server cannot list workflows, which reconciling a period needs,
    nor keep schedules, which a panel's cadence is."""
    app = create_app(dev_env.client, pool, settings, authenticator=authenticator, sla_policy=sla_policy)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


async def test_no_route_answers_a_5xx_to_any_role(api_app, api, listing_api, auth, tokens, time_env, pool):
    schema = schemathesis.openapi.from_dict(api_app.openapi())
    # Drawn text may hold NUL: the models refuse it (422), so it never reaches PostgreSQL.
    live = await live_referral(api, auth, time_env, pool, 901)
    sent, server_errors = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        client = listing_api if operation.path in LISTING_ROUTES else api
        names = {p.name for p in operation.path_parameters}
        strategies: list[Callable[[], Any]] = [
            lambda: operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            lambda: operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        if names:
            known = {name: live[name] for name in names if name in live}
            strategies.append(lambda: operation.as_strategy(path_parameters=known))
        for strategy in strategies:
            for case in drawn(strategy(), EXAMPLES):
                request = case.as_transport_kwargs(base_url="http://api.test")
                headers = {k: v for k, v in (request.get("headers") or {}).items() if k.lower() != "authorization"}
                for role, user in ROLES.items():
                    response = await client.request(
                        request["method"],
                        request["url"],
                        params=request.get("params"),
                        headers=headers | (auth(user) if user else {}),
                        **body_of(request),
                    )
                    sent += 1
                    if response.status_code >= 500:
                        server_errors.append((operation.label, role, response.status_code, response.text[:300]))
    assert sent > 5000
    assert server_errors == [], "\n".join(map(str, server_errors))


# A path parameter no live referral gives: an ID of the right shape that names nothing.
WELL_FORMED = {"sitting_id": PanelSittings.example_id, "name": "screening", "episode_id": MissingEpisodes.example_id,
               "triage_id": Triages.example_id, "plan_id": TriggerPlans.example_id}
# What a dashboard form or link may carry: its fields, drawn as any text.
DASHBOARD_FIELDS = [
    "token", "next", "idempotency_key", "decision", "rationale", "expires", "sig", "acknowledged", "done", "approved",
    "reasons", "risk", "outcome", "note", "held_at", "conference_at", "attendees.0.name", "child_decisions.0.decision",
    "agreed_actions.0.deadline", "form_id", "incident.type", "incident.occurred_at", "children.0.date_of_birth",
    "granted", "submission.form_id", "submission.children.0.name", "add.0.case_id", "remove.0", "child.date_of_birth",
    "plan.review_by", "plan.owner.agency", "folds_in.0", "information", "fold_in", "day",
]


def dashboard_requests(path: str, live: dict[str, str], examples: int) -> list[tuple[str, dict[str, str]]]:
    """Paths with drawn (and live) parameters, each with drawn form fields or query parameters."""
    names = re.findall(r"{(\w+)}", path)
    fields = st.dictionaries(st.sampled_from(DASHBOARD_FIELDS), st.text(max_size=40), max_size=4)
    segment = st.text(min_size=1, max_size=30).map(lambda text: quote(text, safe=""))
    drawn_requests = drawn(
        st.tuples(st.fixed_dictionaries({name: st.one_of(st.just(live.get(name) or WELL_FORMED[name]), segment)
                                         for name in names}), fields),
        examples,
    )
    return [(path.format(**params), form) for params, form in drawn_requests]


async def test_no_dashboard_page_answers_a_5xx_to_any_role(api_app, api, auth, tokens, time_env, pool):
    live = await live_referral(api, auth, time_env, pool, 902)
    live["workflow_id"] = live["case_id"] = live["reference"]  # the case a form is sent on, or opened
    sent, server_errors = 0, []
    browsers = {role: await sign_in(api, tokens[user]) for role, user in ROLES.items() if user}
    # The pages the app serves, listed from each page's own router.
    for route in [route for page in PAGES for route in page.router.routes]:
        for path, form in dashboard_requests(route.path, live, EXAMPLES):
            for method in route.methods:
                for role, user in ROLES.items():
                    browser = browsers.get(role)
                    # A post carries its session's CSRF token, as a page's form does, so it reaches the route.
                    fields = browser.form(**form) if browser and method == "POST" else form
                    response = await api.request(method, path, headers=browser.headers if browser else {},
                                                 **({"data": fields} if method == "POST" else {"params": fields}))
                    sent += 1
                    if route.path.endswith("/logout") and browser:
                        browsers[role] = await sign_in(api, tokens[user])  # signed out: sign in again
                    if response.status_code >= 500:
                        server_errors.append((method, route.path, path, role, response.status_code))
    assert sent > 1000
    assert server_errors == [], "\n".join(map(str, server_errors))

"""The dashboard's sign-in: a server-side session whose ID alone the cookie holds, revoked at sign-out; CSRF tokens on
every form post; the security headers of every page and answer."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import timedelta

import httpx
import jwt
import pytest

from auth.sessions import COOKIE, Sessions, session_hash
from auth.tokens import Authenticator, InvalidCredentials, JwtVerifier
from starter.synthetic import AUDITOR, approval
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import advance_to, sign_in, start_referral, state_when
from workflows.models import Role
from workflows.referral import ReferralWorkflow


async def session_row(pool, cookie: str):
    return await pool.fetchrow("SELECT * FROM dashboard_sessions WHERE id_hash = $1", session_hash(cookie))


async def test_the_cookie_holds_a_session_id_whose_hash_alone_is_stored(api, tokens, pool):
    token = tokens["auditor"]
    response = await api.post("/dashboard/login", data={"token": token, "next": "/dashboard/referrals"})
    api.cookies.clear()
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/referrals"
    cookie = response.cookies[COOKIE]
    assert cookie != token and token not in response.headers["set-cookie"]
    attributes = response.headers["set-cookie"].lower()
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain http here; https below

    row = await session_row(pool, cookie)
    assert (row["actor_id"], row["actor_role"], row["agency"]) == (AUDITOR.id, "auditor", "police")
    assert row["id_hash"] == hashlib.sha256(cookie.encode()).digest()
    # Neither the token nor the session ID is anywhere in the table.
    dumped = " ".join(str(value) for value in (await pool.fetchrow(
        "SELECT * FROM dashboard_sessions WHERE id_hash = $1", row["id_hash"])).values())
    assert token not in dumped and cookie not in dumped
    assert timedelta(hours=7, minutes=59) < row["expires_at"] - row["created_at"] <= timedelta(hours=8)

    # The raw token is not a session: a cookie holding it opens nothing.
    page = await api.get("/dashboard/referrals", headers={"Cookie": f"{COOKIE}={token}"})
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")
    page = await api.get("/dashboard/referrals", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert page.status_code == 200 and "auditor" in page.text


async def test_over_https_the_cookie_is_secure(api_app, tokens):
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://dashboard.test") as https:
        response = await https.post("/dashboard/login", data={"token": tokens["sergeant"], "next": "/dashboard/"})
    assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()


async def test_signing_out_revokes_the_session_and_a_replayed_cookie_fails(api, tokens, pool):
    browser = await sign_in(api, tokens["sergeant"])
    cookie = browser.headers["Cookie"].split("=", 1)[1]
    assert (await api.get("/dashboard/escalations", headers=browser.headers)).status_code == 200

    # Sign-out is a form like any other: without the session's CSRF token it is refused, and the session lives on.
    refused = await api.post("/dashboard/logout", headers=browser.headers)
    assert refused.status_code == 403 and "Not sent" in refused.text
    assert (await session_row(pool, cookie))["revoked_at"] is None

    out = await api.post("/dashboard/logout", data=browser.form(), headers=browser.headers)
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert f'{COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert (await session_row(pool, cookie))["revoked_at"] is not None
    # The copied cookie is worth nothing now, for pages and for forms.
    replayed = await api.get("/dashboard/escalations", headers=browser.headers)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/dashboard/login")
    again = await api.post("/dashboard/logout", data=browser.form(), headers=browser.headers)
    # A form posted under an ended session sends its sender to sign in, and then home (a post has no page to return to).
    assert again.status_code == 303 and again.headers["location"] == "/dashboard/login?next=/dashboard/"
    with pytest.raises(InvalidCredentials, match="signed out"):
        await Sessions(pool).caller(cookie)


async def test_signing_in_again_ends_the_browsers_earlier_session(api, tokens, pool):
    first = await sign_in(api, tokens["screener"])
    again = await api.post("/dashboard/login", headers=first.headers,
                           data={"token": tokens["screener"], "next": "/dashboard/referrals"})
    api.cookies.clear()
    assert again.status_code == 303 and again.cookies[COOKIE] != first.headers["Cookie"].split("=", 1)[1]
    assert (await api.get("/dashboard/referrals", headers=first.headers)).status_code == 303
    second = {"Cookie": f"{COOKIE}={again.cookies[COOKIE]}"}
    assert (await api.get("/dashboard/referrals", headers=second)).status_code == 200


async def test_an_expired_session_opens_nothing(api, tokens, pool):
    browser = await sign_in(api, tokens["screener"])
    cookie = browser.headers["Cookie"].split("=", 1)[1]
    await pool.execute("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = $1",
                       session_hash(cookie))
    page = await api.get("/dashboard/referrals", headers=browser.headers)
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")
    with pytest.raises(InvalidCredentials, match="expired"):
        await Sessions(pool).caller(cookie)


async def test_a_cookie_value_turns_into_its_caller_and_a_session_never_outlives_its_token(pool):
    secret = "synthetic-session-test-secret-of-32-bytes"
    expires = int(time.time()) + 3600
    token = jwt.encode({"sub": "AUD-9002", "role": "auditor", "agency": "police", "exp": expires}, secret)
    caller = await Authenticator(jwt_verifier=JwtVerifier(key=secret, algorithms=["HS256"])).authenticate(token)
    sessions = Sessions(pool)
    cookie, session = await sessions.open(caller)
    # An hour left on the token: the session ends with it, not eight hours on.
    assert int(session.expires_at.timestamp()) == expires

    signed_in = await sessions.caller(cookie)
    assert (signed_in.actor.id, signed_in.actor.role) == ("AUD-9002", Role.AUDITOR)
    for forged in (None, "", "x" * 200, cookie[:-1] + ("A" if cookie[-1] != "A" else "B"), token):
        with pytest.raises(InvalidCredentials):
            await sessions.caller(forged)
    assert await sessions.revoke(cookie) and not await sessions.revoke(cookie)


async def test_a_form_without_its_sessions_csrf_token_changes_nothing(api, tokens, time_env, time_queue, sla_policy):
    start = await time_env.get_current_time()
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=1701)
    await advance_to(time_env, start + timedelta(hours=24, minutes=1))
    escalation = (await state_when(handle, lambda s: len(s.escalations) == 1)).escalations[0]
    acknowledge = f"/dashboard/escalations/{escalation.escalation_id}/acknowledge"
    sergeant = await sign_in(api, tokens["sergeant"])
    other = await sign_in(api, tokens["sergeant"])  # the same person's other session has its own token

    for fields in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}, {"csrf_token": other.csrf_token}):
        response = await api.post(acknowledge, data=fields, headers=sergeant.headers)
        assert response.status_code == 403 and "Not sent" in response.text, fields
    assert (await handle.query(ReferralWorkflow.state)).escalations[0].acknowledged_at is None
    # A form from another site is refused even with the token (the same-origin check stays).
    foreign = await api.post(acknowledge, data=sergeant.form(), headers=sergeant.headers | {"Origin": "https://x.example"})
    assert foreign.status_code == 403
    # The page's own form is accepted.
    done = await api.post(acknowledge, data=sergeant.form(), headers=sergeant.headers)
    assert done.status_code == 303
    assert (await handle.query(ReferralWorkflow.state)).escalations[0].acknowledged_by == "PS-2001"
    await handle.execute_update(ReferralWorkflow.review, approval())


def policy(response: httpx.Response) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def assert_safe(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert policy(response)["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy(response).get("script-src", "")


async def test_every_page_and_answer_carries_the_security_headers(api, auth, tokens):
    browser = await sign_in(api, tokens["auditor"])
    for path in ("/dashboard/referrals", "/dashboard/escalations", "/dashboard/timeliness", "/dashboard/actions"):
        page = await api.get(path, headers=browser.headers)
        assert page.status_code == 200, path
        assert_safe(page)
        # No script at all; the one style block runs by the nonce this answer names, fresh each time.
        csp = policy(page)
        assert "script-src" not in csp and csp["default-src"] == "'none'" and csp["form-action"] == "'self'"
        nonce = re.search(r"'nonce-([^']+)'", csp["style-src"]).group(1)
        assert f'<style nonce="{nonce}">' in page.text and "<script" not in page.text
    again = await api.get(path, headers=browser.headers)
    assert policy(again)["style-src"] != policy(page)["style-src"]

    sign_in_page = await api.get("/dashboard/login")
    assert_safe(sign_in_page)
    redirect = await api.get("/dashboard/referrals")
    assert redirect.status_code == 303
    assert_safe(redirect)
    # The API's answers, errors included: nothing may load from them or frame them.
    for response in (await api.get("/referrals", headers=auth("auditor")), await api.get("/referrals"),
                     await api.get("/openapi.json")):
        assert_safe(response)
        assert policy(response)["default-src"] == "'none'"

    # The interactive docs run exactly the inline script they carry, by its hash.
    docs = await api.get("/docs")
    assert_safe(docs)
    scripts = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert scripts
    allowed = policy(docs)["script-src"].split()
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed
    assert len([a for a in allowed if a.startswith("'sha256-")]) == len(scripts)

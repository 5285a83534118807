"""Bearer credentials: JWTs by shared secret, public key and JWKS; the static token file; the actor they name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from runtime.settings import Settings
from api.app import create_app
from auth.tokens import Authenticator, InvalidCredentials, JwtVerifier
from starter.demo_users import DEMO_USERS, ensure_demo_tokens
from starter.synthetic import synthetic_vist
from tests.api_fixtures import track
from workflows.models import Agency, Rank, Role

SECRET = "synthetic-test-secret-of-enough-length-for-hs256"


def claims(**overrides) -> dict:
    return {"sub": "PS-2001", "role": "supervisor", "agency": "police", "team": "Testtown",
            "exp": int(time.time()) + 300} | overrides


def hs256(**overrides) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


async def test_a_shared_secret_jwt_names_the_actor():
    authenticator = Authenticator(jwt_verifier=JwtVerifier(key=SECRET, algorithms=["HS256"]))
    caller = await authenticator.authenticate(hs256())
    assert (caller.actor.id, caller.actor.role, caller.actor.agency, caller.team) == (
        "PS-2001", Role.SUPERVISOR, Agency.POLICE, "Testtown")
    partner = await authenticator.authenticate(hs256(sub="HV-5001", role="partner", agency="health", team=None))
    assert partner.actor.agency is Agency.HEALTH


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(hs256(exp=int(time.time()) - 10), id="expired"),
        pytest.param(jwt.encode(claims(), "another-secret-of-enough-length-for-hs256", algorithm="HS256"),
                     id="wrong-key"),
        pytest.param(hs256(role="system"), id="system-role"),
        pytest.param(hs256(role="chief"), id="unknown-role"),
        pytest.param(hs256(sub="Not A Staff Id!"), id="bad-subject"),
        pytest.param(jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET, algorithm="HS256"),
                     id="no-expiry"),
        pytest.param(jwt.encode({k: v for k, v in claims().items() if k != "role"}, SECRET, algorithm="HS256"),
                     id="no-role"),
        pytest.param(jwt.encode(claims(), None, algorithm="none"), id="unsigned"),
        pytest.param("", id="empty"),
        pytest.param("not.a.jwt", id="garbage"),
    ],
)
async def test_invalid_jwts_are_refused(token):
    authenticator = Authenticator(jwt_verifier=JwtVerifier(key=SECRET, algorithms=["HS256"]))
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(token)


async def test_audience_and_issuer_are_checked_when_configured():
    verifier = JwtVerifier(key=SECRET, algorithms=["HS256"], audience="referrals", issuer="https://idp.test")
    authenticator = Authenticator(jwt_verifier=verifier)
    good = hs256(aud="referrals", iss="https://idp.test")
    assert (await authenticator.authenticate(good)).actor.id == "PS-2001"
    for token in (hs256(aud="other", iss="https://idp.test"), hs256(aud="referrals"), hs256()):
        with pytest.raises(InvalidCredentials):
            await authenticator.authenticate(token)


async def test_a_public_key_verifies_rs256_and_is_never_an_hmac_secret(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem)
    settings = Settings(_env_file=None, data_dir=tmp_path, api_jwt_public_key_file=key_file)
    authenticator = Authenticator.from_settings(settings)
    token = jwt.encode(claims(role="screener", sub="CRU-3001"), private, algorithm="RS256")
    assert (await authenticator.authenticate(token)).actor.role is Role.SCREENER
    # Algorithm confusion: the public key used as an HS256 secret must not verify.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(f"{signing_input}.{signature}")


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """A JWKS endpoint on the loopback interface, serving one ES256 key."""
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key())) | {"kid": "test-k1", "alg": "ES256", "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", private
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_jwks_url_verifies_es256(jwks_server):
    url, private = jwks_server
    authenticator = Authenticator(jwt_verifier=JwtVerifier(jwks_url=url))
    token = jwt.encode(claims(sub="SW-6001", role="partner", agency="childrens_social_care"), private,
                       algorithm="ES256", headers={"kid": "test-k1"})
    caller = await authenticator.authenticate(token)
    assert (caller.actor.id, caller.actor.agency) == ("SW-6001", Agency.CHILDRENS_SOCIAL_CARE)
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims(), other, algorithm="ES256", headers={"kid": "test-k1"})
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(forged)
    unknown_kid = jwt.encode(claims(), private, algorithm="ES256", headers={"kid": "nope"})
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(unknown_kid)


async def test_the_demo_token_file_is_made_once_owner_only_and_loaded(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    first = ensure_demo_tokens(settings.tokens_file)
    assert set(first) == set(DEMO_USERS) and len(set(first.values())) == len(DEMO_USERS)
    assert stat.S_IMODE(settings.tokens_file.stat().st_mode) == 0o600
    assert ensure_demo_tokens(settings.tokens_file) == first
    authenticator = Authenticator.from_settings(settings)
    caller = await authenticator.authenticate(first["sergeant"])
    assert (caller.actor.id, caller.actor.role, caller.team) == ("PS-2001", Role.SUPERVISOR, "Testtown")
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(first["sergeant"][:-1])
    # No token file and no JWT configured: every request is refused.
    assert not Authenticator.from_settings(Settings(_env_file=None, data_dir=tmp_path / "empty")).configured


async def test_a_supervisors_rank_comes_from_the_rank_claim():
    authenticator = Authenticator(jwt_verifier=JwtVerifier(key=SECRET, algorithms=["HS256"]))
    assert (await authenticator.authenticate(hs256(rank="inspector"))).actor.rank is Rank.INSPECTOR
    assert (await authenticator.authenticate(hs256())).actor.rank is None
    for bad in (hs256(rank="commissioner"), hs256(role="screener", rank="inspector")):
        with pytest.raises(InvalidCredentials):
            await authenticator.authenticate(bad)


async def test_an_older_demo_token_file_gains_the_ranks_and_the_inspector_and_keeps_its_tokens(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    settings.tokens_file.write_text(json.dumps({
        "sergeant-token": {"id": "PS-2001", "role": "supervisor", "team": "Testtown"},
        "other-token": {"id": "PC-4242", "role": "officer"},
    }))
    tokens = ensure_demo_tokens(settings.tokens_file)
    assert tokens["sergeant"] == "sergeant-token" and set(tokens) == set(DEMO_USERS)
    assert stat.S_IMODE(settings.tokens_file.stat().st_mode) == 0o600
    authenticator = Authenticator.from_settings(settings)
    assert (await authenticator.authenticate("sergeant-token")).actor.rank is Rank.SERGEANT
    assert (await authenticator.authenticate(tokens["inspector"])).actor.rank is Rank.INSPECTOR
    assert (await authenticator.authenticate("other-token")).actor.id == "PC-4242"


async def test_the_jwts_actor_travels_into_the_workflow(time_env, pool, time_queue, settings, sla_policy):
    authenticator = Authenticator(jwt_verifier=JwtVerifier(key=SECRET, algorithms=["HS256"]))
    app = create_app(time_env.client, pool, settings.model_copy(update={"task_queue": time_queue}),
                     authenticator=authenticator, sla_policy=sla_policy, clock=time_env.get_current_time)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as api:
        officer = {"Authorization": f"Bearer {hs256(sub='PC-7777', role='officer')}"}
        form = synthetic_vist(rng=random.Random("auth:501")).model_dump(mode="json") | {"officer_id": "PC-7777"}
        intake = await api.post("/referrals", json=form, headers=officer)
        assert intake.status_code == 201
        reference = intake.json()["reference"]
        track(time_env.client, reference)
        sergeant = {"Authorization": f"Bearer {hs256(sub='PS-7777')}"}
        review = await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True},
                                headers=sergeant)
        assert review.status_code == 200
        assert [(h["kind"], h["actor_id"]) for h in review.json()["history"]] == [("supervisor_reviewed", "PS-7777")]
    submitted_by = await pool.fetchval(
        "SELECT actor_id FROM referral_events WHERE reference = $1 AND kind = 'vist_submitted'", reference
    )
    assert submitted_by == "PC-7777"

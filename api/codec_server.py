"""The codec server: Temporal's `/encode` and `/decode` protocol, so the Web UI and CLI can show
decrypted payloads to auditors and administrators, and to nobody else.

Two credentials are accepted: a bearer token (the CLI's `--codec-auth`, or a Web UI that signs
its users in and passes their token over https), or the dashboard's session cookie, which a
browser signed in on the dashboard sends with the Web UI's cross-origin requests ("include
cross-origin credentials"), since a cookie is the host's whatever the port. A session counts only
on a request from an allowed Web UI origin, so no other page can spend it. Every decode is a read
of referral details and goes into the access log. Serve it with `python -m api.codec_server`
(`make run` starts it and points the Web UI at it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.errors import http_refused
from runtime.codec import refusal
from runtime.settings import Settings
from auth.sessions import COOKIE, Sessions
from auth.tokens import Authenticator, Caller, InvalidCredentials
from workflows.models import Role

log = structlog.get_logger("codec_server")

DECODERS = frozenset({Role.AUDITOR, Role.ADMIN})

AccessRecorder = Callable[[Caller, str, dict], Awaitable[None]]
# The signed-in caller a dashboard session cookie's value stands for; InvalidCredentials when it stands for none.
SessionLookup = Callable[[str | None], Awaitable[Caller]]


@dataclass(frozen=True)
class DashboardSessions:
    """How the codec server recognises a browser signed in on the dashboard: the cookie's name and its lookup."""

    cookie: str
    caller: SessionLookup


def create_codec_app(
    codec: PayloadCodec,
    authenticator: Authenticator,
    cors_origins: list[str],
    record_access: AccessRecorder | None = None,
    sessions: DashboardSessions | None = None,
) -> FastAPI:
    app = FastAPI(title="Referral payload codec", docs_url=None, redoc_url=None)
    app.add_exception_handler(HTTPException, http_refused)  # its refusals are problem details, as the API's are
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins,
        allow_credentials=True,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )

    def session_cookie(request: Request) -> str | None:
        """The dashboard session's cookie, when it is the request's credentials (a bearer token comes first)."""
        if sessions is None or "authorization" in request.headers:
            return None
        return request.cookies.get(sessions.cookie)

    async def authenticated(request: Request, authorization: str | None) -> Caller:
        cookie = session_cookie(request)
        if cookie is None or sessions is None:
            scheme, _, token = (authorization or "").partition(" ")
            return await authenticator.authenticate(token if scheme.lower() == "bearer" else None)
        if request.headers.get("origin") not in cors_origins:
            # A same-site page other than the Web UI could send the cookie too: only the UI may spend it.
            raise HTTPException(403, "Origin: a dashboard session is accepted only from the Temporal Web UI")
        return await sessions.caller(cookie)

    async def caller(request: Request, authorization: str | None = Header(default=None)) -> Caller:
        try:
            who = await authenticated(request, authorization)
        except InvalidCredentials as error:
            log.info("codec_unauthenticated", reason=str(error))
            raise HTTPException(
                401, "a valid bearer token, or an auditor's dashboard session, is required", {"WWW-Authenticate": "Bearer"}
            ) from None
        if who.actor.role not in DECODERS:
            raise HTTPException(403, f"role {who.actor.role.value} may not use the codec server")
        return who

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    async def payloads_of(request: Request) -> Payloads:
        try:
            return json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as error:
            raise HTTPException(400, "body: expected {\"payloads\": [...]} in Temporal's JSON form") from error

    def respond(payloads: list) -> dict:
        return json_format.MessageToDict(Payloads(payloads=payloads))

    @app.post("/encode")
    async def encode(request: Request, who: Caller = Depends(caller)) -> dict:
        payloads = await payloads_of(request)
        return respond(await codec.encode(payloads.payloads))

    @app.post("/decode")
    async def decode(request: Request, who: Caller = Depends(caller)) -> dict:
        started = time.perf_counter()
        payloads = await payloads_of(request)
        opened = await codec.decode(payloads.payloads)
        for index, payload in enumerate(opened):
            reason = refusal(payload)  # plaintext, a tampered payload, or a key no longer held
            if reason is not None:
                raise HTTPException(422, f"payloads[{index}]: refused, {reason}")
        if record_access is not None:
            namespace = request.headers.get("X-Namespace")
            credentials = "token" if session_cookie(request) is None else "dashboard_session"
            detail = {"payloads": len(opened), "namespace": namespace, "credentials": credentials}
            await record_access(who, "decode_payloads", detail)
        log.info(
            "codec_decode", actor=who.actor.id, payloads=len(opened), ms=round((time.perf_counter() - started) * 1000, 1)
        )
        return respond(opened)

    return app


async def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM on CODEC_SERVER_HOST:CODEC_SERVER_PORT, recording decodes in PostgreSQL's access log."""
    import uvicorn

    from readmodel.access_log import AccessLog
    from readmodel.database import create_pool
    from runtime.codec import EncryptionCodec
    from runtime.temporal import load_keyring

    if settings.database_url is None:
        raise SystemExit("the codec server needs DATABASE_URL for its access log")
    pool = await create_pool(settings.database_url.get_secret_value())
    access_log = AccessLog(pool)

    async def record(who: Caller, action: str, detail: dict) -> None:
        await access_log.record(who.actor, "codec_server", action, detail=detail)

    authenticator = Authenticator.from_settings(settings)
    # The dashboard's sessions, in the same PostgreSQL: a signed-out session decodes nothing.
    sessions = DashboardSessions(COOKIE, Sessions(pool).caller)
    app = create_codec_app(
        EncryptionCodec(load_keyring(settings)), authenticator, settings.codec_cors_origins, record, sessions
    )
    config = uvicorn.Config(
        app, host=settings.codec_server_host, port=settings.codec_server_port, log_config=None, access_log=False
    )
    log.info("codec_server_starting", url=f"http://{settings.codec_server_host}:{settings.codec_server_port}",
             web_ui_origins=settings.codec_cors_origins)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await pool.close()


if __name__ == "__main__":
    from runtime.service import run_service

    run_service(serve)

"""The codec server: Temporal's `/encode` and `/decode` protocol, so the Web UI and CLI can show
decrypted payloads to auditors and administrators, and to nobody else.

Every decode is a read of referral details and goes into the access log. Serve it with
`python -m api.codec_server`; point the Web UI's "codec server" setting at it with
"pass the access token" on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from runtime.codec import refusal
from auth.tokens import Authenticator, Caller, InvalidCredentials
from workflows.models import Role

log = structlog.get_logger("codec_server")

DECODERS = frozenset({Role.AUDITOR, Role.ADMIN})

AccessRecorder = Callable[[Caller, str, dict], Awaitable[None]]


def create_codec_app(
    codec: PayloadCodec,
    authenticator: Authenticator,
    cors_origins: list[str],
    record_access: AccessRecorder | None = None,
) -> FastAPI:
    app = FastAPI(title="Referral payload codec", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins,
        allow_credentials=True,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )

    async def caller(authorization: str | None = Header(default=None)) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        try:
            who = await authenticator.authenticate(token if scheme.lower() == "bearer" else None)
        except InvalidCredentials as error:
            log.info("codec_unauthenticated", reason=str(error))
            raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}) from None
        if who.actor.role not in DECODERS:
            raise HTTPException(403, f"role {who.actor.role.value} may not use the codec server")
        return who

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
            await record_access(who, "decode_payloads", {"payloads": len(opened), "namespace": namespace})
        log.info(
            "codec_decode", actor=who.actor.id, payloads=len(opened), ms=round((time.perf_counter() - started) * 1000, 1)
        )
        return respond(opened)

    return app


async def _serve() -> None:
    import uvicorn

    from readmodel.access_log import AccessLog
    from readmodel.database import create_pool
    from runtime.codec import EncryptionCodec
    from runtime.logging import configure_logging
    from runtime.settings import Settings
    from runtime.temporal import load_keyring

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise SystemExit("the codec server needs DATABASE_URL for its access log")
    pool = await create_pool(settings.database_url.get_secret_value())
    access_log = AccessLog(pool)

    async def record(who: Caller, action: str, detail: dict) -> None:
        await access_log.record(who.actor, "codec_server", action, detail=detail)

    app = create_codec_app(
        EncryptionCodec(load_keyring(settings)), Authenticator.from_settings(settings), settings.codec_cors_origins, record
    )
    server = uvicorn.Server(uvicorn.Config(app, host=settings.codec_server_host, port=settings.codec_server_port))
    try:
        await server.serve()
    finally:
        await pool.close()


if __name__ == "__main__":
    import asyncio

    asyncio.run(_serve())

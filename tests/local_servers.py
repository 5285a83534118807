"""Real servers on loopback for tests: an SMTP server (aiosmtpd), a signed-webhook receiver, and any ASGI app."""

from __future__ import annotations

import hashlib
import hmac
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.alerts import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from runtime.metrics import loopback_port
from runtime.probes import serving as serving_on


# Ports the tests' servers and stacks listen on: below the kernel's ephemeral range, so that nothing
# the system hands out meanwhile (an outgoing connection, a server binding port 0, as the Temporal dev
# server does for its own metrics) can take one between the asking and the listening; never the same twice.
TEST_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on the loopback, free when asked, not handed out before in this session."""
    for _ in range(200):
        port = random.choice(TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    return loopback_port()


@asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:`port` until the block ends; yields its base URL."""
    async with serving_on(app, "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


class MailServer:
    """An SMTP server that keeps every message it accepts; it can be started late, to play a server that was down."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class ReceivedWebhook:
    body: bytes
    idempotency_key: str | None
    signature_valid: bool


@dataclass
class WebhookReceiver:
    """A Teams/Slack-style receiver that checks each post's signature as a real one would."""

    secret: bytes
    port: int = field(default_factory=free_port)
    received: list[ReceivedWebhook] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            # Checked from the documented scheme, not with the sender's own code.
            timestamp = request.headers.get(TIMESTAMP_HEADER, "")
            expected = "sha256=" + hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            valid = (
                hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected)
                and timestamp.isdigit()
                and abs(time.time() - int(timestamp)) < 300
            )
            self.received.append(ReceivedWebhook(body, request.headers.get(IDEMPOTENCY_HEADER), valid))
            return Response(status_code=204 if valid else 401)

        return Starlette(routes=[Route("/hooks/alerts", receive, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/alerts"

    def serving(self):
        return serving(self.app(), self.port)

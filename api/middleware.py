"""The app's ASGI middleware: security headers on every answer of the API and the dashboard (a content security
policy, no framing, no sniffing, no caching, no referrer).

Every answer may hold a child's data, so none is stored by a browser or proxy (`Cache-Control: no-store`), unless a
route says otherwise. A route may set its own policy (the dashboard's pages do, with a nonce for their style block);
an answer without one gets the strictest: nothing may load, nothing may frame it. An HTML page without a policy of its
own (the API's interactive docs) may run exactly the inline scripts it carries, each allowed by its SHA-256, and load
scripts and styles from this site only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

STRICTEST = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ALWAYS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}
CSP = b"content-security-policy"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def page_policy(body: bytes) -> str:
    """The policy of an HTML page that brings none: its own inline scripts by hash, this site's files, no framing."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in INLINE_SCRIPT.findall(body)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


class HttpMiddleware:
    """ASGI middleware acting on HTTP requests only (`http`); anything else (lifespan) passes straight through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: dict, receive: Any, send: Any) -> None:
        raise NotImplementedError


class SecurityHeaders(HttpMiddleware):
    """Adds the headers above to each answer that does not set them itself."""

    async def http(self, scope: dict, receive: Any, send: Any) -> None:
        start: dict | None = None
        held: list[bytes] = []

        async def secured(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                named = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in ALWAYS.items() if name not in named]
                message = message | {"headers": headers}
                html = any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)
                if CSP not in named and html:
                    start = message  # held until its body is read: the policy names its scripts' hashes
                    return
                if CSP not in named:
                    message["headers"].append((CSP, STRICTEST.encode()))
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                held.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(held)
                await send(start | {"headers": start["headers"] + [(CSP, page_policy(body).encode())]})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, secured)

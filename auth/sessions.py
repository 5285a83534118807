"""Signed-in browser sessions: a random session ID in the cookie, only its hash in PostgreSQL, revoked at sign-out.

Signing in checks a bearer token once (auth/tokens.py) and opens a session holding the caller's
identity (who, role, agency, rank, team); the browser keeps only the session's random ID, never
the long-lived token. A session ends at its expiry (eight hours, sooner when the token itself
expires) or when it is revoked at sign-out: a copy of the cookie is then worth nothing. Each
session has its own token against cross-site request forgery, which every form posts back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from auth.tokens import Caller, InvalidCredentials
from workflows.models import Actor

# The cookie holding the session ID. Its path is the whole host: the codec server, on its own port of the same
# host, reads it too (cookies do not tell ports apart), so a signed-in auditor's Web UI can decode payloads.
COOKIE = "referrals_session"
COOKIE_PATH = "/"
SESSION_LIFETIME = timedelta(hours=8)
# 256 bits from the operating system's generator, URL-safe: a session ID cannot be guessed.
ID_BYTES = 32


def session_hash(session_id: str) -> bytes:
    """What the table keeps of a session ID: its SHA-256 (the ID is random, so no salt is needed)."""
    return hashlib.sha256(session_id.encode()).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in session as the pages use it: the caller, the token its forms carry, and when it ends."""

    caller: Caller
    csrf_token: str
    expires_at: datetime

    def forged(self, submitted: str | None) -> bool:
        """Whether a form's CSRF token is not this session's (compared in constant time)."""
        return not submitted or not secrets.compare_digest(submitted.encode(), self.csrf_token.encode())


class Sessions:
    """The dashboard's sessions in PostgreSQL (table dashboard_sessions, migration 0016)."""

    def __init__(self, pool: asyncpg.Pool, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self.pool = pool
        self.lifetime = lifetime

    async def open(self, caller: Caller) -> tuple[str, Session]:
        """A new session for a caller whose token was just verified: the ID for the cookie, and the session.

        It ends after `lifetime`, or when the caller's credentials expire if that is sooner. Sessions ended a
        day ago or more are swept away here, so the table holds only live and recently ended ones.
        """
        session_id = secrets.token_urlsafe(ID_BYTES)
        csrf_token = secrets.token_urlsafe(ID_BYTES)
        actor = caller.actor
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM dashboard_sessions WHERE least(expires_at, revoked_at) < now() - interval '1 day'"
            )
            expires_at = await conn.fetchval(
                """INSERT INTO dashboard_sessions
                       (id_hash, actor_id, actor_role, agency, rank, team, csrf_token, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, least(now() + $8::interval, $9))
                   RETURNING expires_at""",
                session_hash(session_id), actor.id, actor.role.value, actor.agency.value,
                actor.rank.value if actor.rank else None, caller.team, csrf_token, self.lifetime, caller.expires_at,
            )
        return session_id, Session(caller, csrf_token, expires_at)

    async def session(self, cookie: str | None) -> Session:
        """The live session a cookie's value names; InvalidCredentials when none does (unknown, expired or
        revoked), saying which for the log's sake."""
        if not cookie or len(cookie) > 2 * ID_BYTES:
            raise InvalidCredentials("no session cookie" if not cookie else "not a session ID")
        row = await self.pool.fetchrow(
            """SELECT actor_id, actor_role, agency, rank, team, csrf_token, expires_at,
                      expires_at <= now() AS expired, revoked_at IS NOT NULL AS revoked
               FROM dashboard_sessions WHERE id_hash = $1""",
            session_hash(cookie),
        )
        if row is None:
            raise InvalidCredentials("unknown session")
        if row["revoked"]:
            raise InvalidCredentials("session signed out")
        if row["expired"]:
            raise InvalidCredentials("session expired")
        actor = Actor(id=row["actor_id"], role=row["actor_role"], agency=row["agency"], rank=row["rank"])
        caller = Caller(actor=actor, team=row["team"], expires_at=row["expires_at"])
        return Session(caller, row["csrf_token"], row["expires_at"])

    async def caller(self, cookie: str | None) -> Caller:
        """The signed-in caller a session cookie's value stands for, as `Authenticator.authenticate` gives a
        bearer token's: use it wherever a browser signed in on the dashboard is to be recognised (the codec
        server, for one, reads the cookie named COOKIE from the request and passes its value here).

        Raises InvalidCredentials when the value names no live session: never issued, expired, or signed out.
        The caller's role is as it was at sign-in; a session lasts at most SESSION_LIFETIME.
        """
        return (await self.session(cookie)).caller

    async def revoke(self, cookie: str | None) -> bool:
        """Sign a session out: its cookie no longer opens anything, even if it was copied. Whether one was live."""
        if not cookie:
            return False
        revoked = await self.pool.fetchval(
            """UPDATE dashboard_sessions SET revoked_at = now()
               WHERE id_hash = $1 AND revoked_at IS NULL RETURNING true""",
            session_hash(cookie),
        )
        return bool(revoked)

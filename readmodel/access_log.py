"""The access log: every read of a referral's details, with who, what, when and through which channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime

import asyncpg
from pydantic import BaseModel, Field

from workflows.models import Actor, Agency, Role

CHANNELS = ("api", "cli", "dashboard", "codec_server", "audit")


class AccessRecord(BaseModel):
    id: int
    at: datetime
    actor_id: str
    actor_role: Role
    actor_agency: Agency
    channel: str
    action: str
    reference: str | None = None
    detail: dict = Field(default_factory=dict)


class AccessLog:
    """Writes and reads the access log; `detail` carries identifiers and counts, never personal data."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self,
        actor: Actor,
        channel: str,
        action: str,
        reference: str | None = None,
        detail: dict | None = None,
    ) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel: must be one of {', '.join(CHANNELS)}")
        await self.pool.execute(
            """INSERT INTO access_log (actor_id, actor_role, actor_agency, channel, action, reference, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)""",
            actor.id,
            actor.role.value,
            actor.agency.value,
            channel,
            action,
            reference,
            json.dumps(detail or {}),
        )

    async def query(
        self,
        *,
        reference: str | None = None,
        actor_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[AccessRecord]:
        """Newest first, in the order recorded; `before`: the last id of the page already read, whose older entries
        follow (a keyset, so reads recorded while paging neither repeat nor hide an entry)."""
        rows = await self.pool.fetch(
            """SELECT id, at, actor_id, actor_role, actor_agency, channel, action, reference, detail
               FROM access_log
               WHERE ($1::text IS NULL OR reference = $1)
                 AND ($2::text IS NULL OR actor_id = $2)
                 AND ($3::timestamptz IS NULL OR at >= $3)
                 AND ($5::bigint IS NULL OR id < $5)
               ORDER BY id DESC
               LIMIT $4""",
            reference,
            actor_id,
            since,
            limit,
            before,
        )
        return [AccessRecord.model_validate(dict(row) | {"detail": json.loads(row["detail"])}) for row in rows]


async def record_reads(log: AccessLog, actor: Actor, action: str, references: Iterable[str], detail: dict) -> None:
    """One access-log row (channel "audit") per referral read, or one without a reference when none was named.

    Shared by the API's audit routes and the audit CLI, so an auditor's reads look the same from either.
    """
    await asyncio.gather(*(log.record(actor, "audit", action, ref, detail) for ref in list(references) or [None]))

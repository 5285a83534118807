"""A TCP relay in front of the test PostgreSQL that a test can cut and restore: an outage as every client sees it."""

from __future__ import annotations

import asyncio
import glob
from urllib.parse import parse_qs, urlsplit


class SeverableLink:
    """Relays connections to PostgreSQL; `cut()` drops them all and refuses new ones, `restore()` listens again."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        # The embedded server listens on a Unix socket (host=<dir>), a real one on host:port.
        self._unix = next(iter(sorted(glob.glob(f"{socket_dir}/.s.PGSQL.*[0-9]"))), None) if socket_dir else None
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._user = parts.username or "postgres"
        self._database = parts.path.lstrip("/") or self._user
        self._password = parts.password or ""
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{self._user}:{self._password}@127.0.0.1:{self.port}/{self._database}"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._unix:
            server_reader, server_writer = await asyncio.open_unix_connection(self._unix)
        else:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        self._open |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._open.discard(writer)
            writer.close()

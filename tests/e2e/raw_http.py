"""HTTP/1.1 by hand on one connection, for what an HTTP client hides: that the server answers
before a body has arrived, and whether it keeps the connection open afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

CLOSED_WAIT_S = 1.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        url = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def answer(self, timeout_s: float, head: bool = False) -> Answer:
        """The next response; its body is read by its Content-Length (none for a HEAD request)."""
        async with asyncio.timeout(timeout_s):
            status_line = await self._reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection without an answer")
            headers: dict[str, str] = {}
            while (line := await self._reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = 0 if head else int(headers.get("content-length", "0"))
            body = await self._reader.readexactly(length)
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        try:
            async with asyncio.timeout(CLOSED_WAIT_S):
                return await self._reader.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

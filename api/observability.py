"""Request ids, access logs and HTTP metrics, as plain ASGI middleware (no per-request task overhead);
and the envelope's 500 for an unexpected error, answered so that the connection stays usable."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import BinaryIO

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error_response
from infra.metrics import HTTP_LATENCY, HTTP_REQUESTS
from infra.settings import Settings

ACCESS_LOGGER = "damai.access"
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
# The access log's own buffer: about 300 lines, written out in one system call.
ACCESS_LOG_BUFFER_BYTES = 64 * 1024

# Request ids: a random prefix per process and a counter — unique across processes like a
# UUID, at a fraction of the cost of uuid4 (a system call for randomness per request).
_ID_PREFIX = os.urandom(6).hex()
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_request_numbers):010x}"


class AccessLog:
    """One JSON line per request, in the format of every other log line, written like a web
    server's buffered access log: into a buffer of its own, out to stderr when the buffer is
    full and at least every ``flush_every`` (run by the API's lifespan), and at shutdown.

    Through structlog a line costs about 25 µs, a tenth of a cached detail request; this costs
    about 3. Lines can reach the file up to a second after other log lines written later.
    """

    def __init__(self, stream: BinaryIO | None, json: bool):
        self._stream = stream
        self._fallback = structlog.get_logger(ACCESS_LOGGER) if stream is None or not json else None

    @classmethod
    def for_settings(cls, settings: Settings) -> AccessLog | None:
        """None when the log level hides access lines (above INFO)."""
        if logging.getLevelNamesMapping()[settings.log_level.upper()] > logging.INFO:
            return None
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # stderr replaced (e.g. captured): no own buffer
            return cls(None, settings.log_json)
        return cls(open(fd, "wb", buffering=ACCESS_LOG_BUFFER_BYTES, closefd=False), settings.log_json)

    def line(
        self,
        request_id: str,
        method: str,
        path: str,
        route: str,
        status: int,
        elapsed_s: float,
        correlation_id: str | None = None,
    ) -> None:
        fields: dict[str, str | int | float] = {"request_id": request_id}
        if correlation_id is not None:  # a command's: the id its events carry (damai logs --correlation)
            fields["correlation_id"] = correlation_id
        fields |= {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed_s * 1000, 2),
        }
        if self._fallback is not None:
            self._fallback.info("http.request", **fields)
            return
        assert self._stream is not None
        record = {
            "event": "http.request",
            **fields,
            "level": "info",
            "logger": ACCESS_LOGGER,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        self._stream.write(orjson.dumps(record) + b"\n")

    def flush(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError, ValueError):  # stderr gone at shutdown: nowhere to write
                self._stream.flush()

    async def flush_every(self, interval_s: float) -> None:
        """Write buffered lines out at least this often; cancelled by the lifespan, flushing once more."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                self.flush()
        finally:
            self.flush()


CORRELATION_STATE = "correlation_id"
"""Where a command route leaves its correlation id in the request's state (``api/commands.py``)."""
CORRELATION_ID_HEADER = b"x-correlation-id"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, access_log: AccessLog | None, request_metrics: bool = True):
        self.app = app
        self._access_log = access_log
        # Off only to measure what counting and timing every request costs
        # (``observability.request_metrics``, bench/request_metrics.py).
        self._request_metrics = request_metrics
        # The metric children of each (method, route, status): looking labels up costs more
        # than counting. Bounded by the routes the app declares (unknown paths are "unmatched").
        self._recorders: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0  # until the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                correlation = scope["state"].get(CORRELATION_STATE)
                if correlation is not None:
                    headers.append((CORRELATION_ID_HEADER, correlation.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered here rather than by Starlette's ServerErrorMiddleware, which re-raises after
            # its 500, so that uvicorn closes the keep-alive connection. A response already begun
            # cannot be finished: that connection must close.
            if status:
                raise
            await internal_error_response(exc)(scope, receive, send_with_id)
        finally:
            status = status or 500
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            if self._request_metrics:
                recorder = self._recorders.get((method, template, status))
                if recorder is None:
                    recorder = (
                        HTTP_REQUESTS.labels(method, template, str(status)),
                        HTTP_LATENCY.labels(method, template),
                    )
                    self._recorders[method, template, status] = recorder
                recorder[0].inc()
                recorder[1].observe(elapsed)
            if self._access_log is not None:
                correlation = scope["state"].get(CORRELATION_STATE)
                self._access_log.line(request_id, method, scope["path"], template, status, elapsed, correlation)

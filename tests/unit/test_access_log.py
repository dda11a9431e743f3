"""The access log's own fast path writes the same JSON lines as every other logger."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime

import orjson

from api.observability import AccessLog, new_request_id
from infra.settings import Settings


def test_a_line_is_one_json_record_with_the_request_fields():
    stream = io.BytesIO()
    log = AccessLog(stream, json=True)

    log.line("req-1", "GET", "/api/v1/programs/7", "/api/v1/programs/{program_id}", 200, 0.001234)
    log.flush()

    [line] = stream.getvalue().splitlines()
    record = orjson.loads(line)
    assert datetime.fromisoformat(record.pop("timestamp")).tzinfo is not None
    assert record == {
        "event": "http.request",
        "request_id": "req-1",
        "method": "GET",
        "path": "/api/v1/programs/7",
        "route": "/api/v1/programs/{program_id}",
        "status": 200,
        "duration_ms": 1.23,
        "level": "info",
        "logger": "damai.access",
    }


async def test_buffered_lines_are_written_out_by_the_periodic_flush_and_when_it_stops():
    target = io.BytesIO()
    buffered = io.BufferedWriter(io.BytesIO(), buffer_size=1 << 16)
    buffered.raw.write = target.write  # type: ignore[method-assign]
    log = AccessLog(buffered, json=True)
    flushing = asyncio.create_task(log.flush_every(0.05))

    log.line("req-1", "GET", "/healthz", "/healthz", 200, 0.0)
    held = target.getvalue()
    await asyncio.sleep(0.2)
    flushed = target.getvalue()
    log.line("req-2", "GET", "/healthz", "/healthz", 200, 0.0)
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)

    assert held == b""  # in the buffer, no system call per line
    assert flushed.count(b"\n") == 1
    assert target.getvalue().count(b"\n") == 2


def test_there_is_no_access_log_above_info():
    assert AccessLog.for_settings(Settings(log_level="WARNING")) is None


def test_generated_request_ids_are_distinct():
    assert len({new_request_id() for _ in range(10_000)}) == 10_000

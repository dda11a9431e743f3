"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import orjson
import structlog
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import error_response
from api.resources import Resources, ResourcesDep

log = structlog.get_logger(__name__)
router = APIRouter(tags=["operations"])

Check = Callable[[], Awaitable[object]]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving."""
    return {"status": "alive"}


def _checks(res: Resources) -> dict[str, Check]:
    timeout = res.settings.api.readiness_timeout_s

    async def search() -> None:
        # The Maven Central build answers GET/HEAD / with 405, so ping() cannot be used.
        health = await res.adapters.es.cluster.health(timeout=f"{int(timeout * 1000)}ms")
        if health["status"] not in ("yellow", "green"):
            raise ConnectionError(f"elasticsearch cluster is {health['status']}")

    checks: dict[str, Check] = {
        "kafka": res.commands.publisher.check_reachable,
        "redis": res.redis.ping,
        "elasticsearch": search,
    }
    for database in res.db.pools.databases:
        checks[f"postgres:{database}"] = partial(res.db.pools.check_reachable, database, timeout)
    return checks


async def _probe(check: Check, timeout_s: float) -> Exception | None:
    try:
        await asyncio.wait_for(check(), timeout_s)
        return None
    except Exception as exc:  # noqa: BLE001 — any failure means "not ready"; the log says which
        return exc


@router.get("/readyz")
async def readyz(res: ResourcesDep) -> Response:
    """Every dependency answers now; 503 names the ones that do not. Why they do not (addresses,
    error text) goes to the log only: the answer is public."""
    checks = _checks(res)
    timeout = res.settings.api.readiness_timeout_s
    results = await asyncio.gather(*(_probe(c, timeout) for c in checks.values()))
    failures = {name: error for name, error in zip(checks, results, strict=True) if error is not None}
    states = {name: "down" if name in failures else "up" for name in checks}
    if failures:
        errors = {name: repr(error) for name, error in failures.items()}
        log.warning("readiness.not_ready", down=sorted(failures), errors=errors)
        return error_response(
            503,
            "NOT_READY",
            f"unavailable: {', '.join(sorted(failures))}",
            {"down": sorted(failures), "checks": states},
        )
    ready = {"status": "ready", "checks": states}
    return Response(orjson.dumps(ready), media_type="application/json")


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

"""The FastAPI application: thin routers over commands and read views."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import admin_programs, captcha, health, orders, payments, programs, reference, search, sessions, users
from api.edge import EdgeMiddleware
from api.errors import install_error_handlers
from api.observability import AccessLog, RequestContextMiddleware
from api.openapi import install_openapi
from api.rate_limit import RATE_LIMITED_RESPONSE
from api.resources import Resources
from infra.logging import configure_logging
from infra.settings import Settings, get_settings

# Longest an access line waits in its buffer (docs/operations.md).
ACCESS_LOG_FLUSH_S = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    access_log = AccessLog.for_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = await Resources.open(settings)
        # What start-up allocated lives as long as the process: keep it out of every later
        # garbage collection (each full pass would otherwise walk all of it).
        gc.collect()
        gc.freeze()
        flusher = None
        if access_log is not None:
            flusher = asyncio.create_task(access_log.flush_every(ACCESS_LOG_FLUSH_S), name="access-log")
        try:
            yield
        finally:
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            await app.state.resources.close()

    app = FastAPI(
        title="Damai",
        version="0.1.0",
        lifespan=lifespan,
        # No default_response_class: routes with a response model are encoded by pydantic straight
        # to bytes (what FastAPI recommends since ORJSONResponse is deprecated); the hot reads
        # return their bytes ready-made.
        # Metrics are Prometheus (/metrics) and logs structlog; FastAPI's own OpenTelemetry hooks
        # would only ask, on every request, whether a provider was configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_openapi(app)
    # The last added runs first: request id, metrics and the last-resort 500 around the edge's
    # checks (rate limit, credential, body), which run before FastAPI reads a body.
    app.add_middleware(EdgeMiddleware, settings=settings.api)
    app.add_middleware(
        RequestContextMiddleware, access_log=access_log, request_metrics=settings.observability.request_metrics
    )
    # Routes are matched in order: the buyers' hot reads first (no path below overlaps another).
    app.include_router(programs.router)
    app.include_router(search.router)
    app.include_router(reference.router)
    app.include_router(health.router)
    # Commands are rate limited per client address (by the edge, before their credential), or per
    # signed-in user (by the route, once the token names the user).
    for router in (
        orders.router,
        payments.router,
        captcha.router,
        users.router,
        sessions.router,
        reference.admin_router,
        admin_programs.router,
        payments.admin_router,
    ):
        app.include_router(router, responses=RATE_LIMITED_RESPONSE)
    return app

"""The FastAPI application: thin routers over commands and read views."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from api import admin_programs, health, programs, reference, search
from api.errors import install_error_handlers
from api.observability import RequestContextMiddleware
from api.resources import Resources
from infra.logging import configure_logging
from infra.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = await Resources.open(settings)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(title="Damai", version="0.1.0", lifespan=lifespan, default_response_class=ORJSONResponse)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(reference.router)
    app.include_router(reference.admin_router)
    app.include_router(admin_programs.router)
    app.include_router(search.router)
    app.include_router(programs.router)
    return app

"""The API with one more route, which fails as a bug would: served by uvicorn from the tests that
need an unexpected error, and by nothing else (no setting of the real API reaches it)."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app as create_api

FAULT_PATH = "/test/fault"


def create_app() -> FastAPI:
    app = create_api()

    @app.get(FAULT_PATH, include_in_schema=False)
    async def fault() -> None:
        raise RuntimeError("a bug, on purpose")

    return app

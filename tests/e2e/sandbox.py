"""The payment sandbox (`damai sandbox-pay`) as the e2e modules that pay run it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.processes import eventually

SANDBOX_READY_S = 30


def sandbox_env(port: int) -> dict[str, str]:
    """The settings that put the sandbox on ``port`` and the Alipay adapter on it."""
    return {
        "DAMAI_PAYMENTS__SANDBOX_PORT": str(port),
        "DAMAI_PAYMENTS__ALIPAY__GATEWAY": f"http://127.0.0.1:{port}/gateway.do",
    }


@asynccontextmanager
async def sandbox_client(port: int) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the sandbox on ``port``, once it answers."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

        async def up() -> bool:
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up, SANDBOX_READY_S, "the payment sandbox")
        yield client

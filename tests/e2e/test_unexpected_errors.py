"""An unexpected error: 500 in the envelope, logged, and the keep-alive connection still usable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest_asyncio

from cli.provision import provision_namespace, remove_namespace
from infra.settings import Settings
from tests.conftest import isolated_copy
from tests.e2e.faulty_api import FAULT_PATH
from tests.e2e.raw_http import Connection, request_head
from tests.processes import Child, free_port, wait_until

ANSWER_S = 5.0
START_S = 30.0


@dataclass
class FaultyApi:
    base_url: str
    process: Child


@pytest_asyncio.fixture(scope="module")
async def faulty_api(settings: Settings, tmp_path_factory) -> AsyncIterator[FaultyApi]:
    """The API with a route that raises (tests/e2e/faulty_api.py), under uvicorn."""
    iso = isolated_copy(settings)
    await provision_namespace(iso)
    host, port = iso.api.host, free_port()
    args = ["uvicorn", "tests.e2e.faulty_api:create_app", "--factory", "--host", host, "--port", str(port)]
    child = Child([*args, "--no-access-log"], iso, tmp_path_factory.mktemp("faulty") / "api.log")
    base_url = f"http://{host}:{port}"

    def alive() -> bool:
        assert child.proc.poll() is None, f"the API exited:\n{child.output()[-3000:]}"
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(alive, START_S, "the faulty API to answer /healthz")
        yield FaultyApi(base_url, child)
    finally:
        child.stop()
        await remove_namespace(iso)


async def test_unexpected_error_is_a_500_in_the_envelope(faulty_api: FaultyApi):
    async with httpx.AsyncClient(base_url=faulty_api.base_url) as http:
        response = await http.get(FAULT_PATH)

    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert set(response.json()) == {"code", "message", "details"}


async def test_unexpected_error_leaves_the_connection_usable(faulty_api: FaultyApi):
    connection = await Connection.open(faulty_api.base_url)
    try:
        await connection.send(request_head("GET", FAULT_PATH))
        failed = await connection.answer(ANSWER_S)
        await connection.send(request_head("GET", "/healthz"))
        after = await connection.answer(ANSWER_S)
    finally:
        await connection.close()

    assert failed.status == 500
    assert "close" not in failed.headers.get("connection", "")
    assert after.status == 200
    assert orjson.loads(after.body) == {"status": "alive"}


async def test_unexpected_error_is_logged_once_with_its_traceback_and_request_id(faulty_api: FaultyApi):
    async with httpx.AsyncClient(base_url=faulty_api.base_url) as http:
        response = await http.get(FAULT_PATH, headers={"X-Request-ID": "fault-logged-once"})

    lines = [orjson.loads(line) for line in faulty_api.process.output().splitlines() if "fault-logged-once" in line]
    errors = [line for line in lines if line.get("event") == "api.unhandled_error"]
    assert response.status_code == 500
    assert len(errors) == 1
    assert "RuntimeError: a bug, on purpose" in errors[0]["exception"]
    assert "Exception in ASGI application" not in faulty_api.process.output()

"""/readyz's 503 names what is down and its state to anyone; where it lives and why it failed go
to the API's log. The API here is pointed at an Elasticsearch that is not there, so the shared
stack keeps running for every other test."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import System
from tests.processes import eventually, free_port

pytestmark = pytest.mark.slow
NOWHERE_PORT = free_port()
NOWHERE = f"http://127.0.0.1:{NOWHERE_PORT}"
NOWHERE_PORT_TEXT = f":{NOWHERE_PORT}"
LOGGED_S = 10


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {"DAMAI_ELASTICSEARCH__URL": NOWHERE}


async def test_not_ready_names_what_is_down_and_nothing_more_when_asked_anonymously(system: System):
    response = await system.http.get("/readyz")

    assert response.status_code == 503, response.text
    up = {"kafka", "redis", *(f"postgres:{db}" for db in system.settings.postgres.databases)}
    assert response.json() == {
        "code": "NOT_READY",
        "message": "unavailable: elasticsearch",
        "details": {"down": ["elasticsearch"], "checks": {"elasticsearch": "down", **dict.fromkeys(up, "up")}},
    }


async def test_not_ready_shows_no_address_or_error_text_when_asked_anonymously(system: System):
    body = (await system.http.get("/readyz")).text

    for secret in ("127.0.0.1", str(NOWHERE_PORT), str(system.settings.postgres.port), "Error", "refused"):
        assert secret not in body


async def test_not_ready_logs_the_address_and_error_of_what_is_down(system: System):
    await system.http.get("/readyz")

    async def logged() -> bool:
        lines = system.api_log.read_text(errors="replace").splitlines()
        return any("readiness.not_ready" in line and NOWHERE_PORT_TEXT in line for line in lines)

    await eventually(logged, LOGGED_S, "the readiness failure in the API's log")

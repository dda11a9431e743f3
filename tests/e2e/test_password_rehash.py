"""A login with a hash of older argon2 parameters stores a hash under the current ones."""

from __future__ import annotations

import httpx
import pytest

from bootstrap import Adapters
from queries.views.users import load_user
from tests.e2e.conftest import System
from tests.e2e.test_users import PASSWORD, log_in, new_mobile, register
from tests.processes import eventually, free_port, start_api


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {"DAMAI_PASSWORDS__TIME_COST": "1", "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "100000"}


async def test_a_login_after_the_parameters_rose_rehashes_the_password(system: System, tmp_path):
    mobile = new_mobile()
    user_id = int(await register(system, mobile))
    settings = system.settings.model_copy(update={"api": system.settings.api.model_copy(update={"port": free_port()})})
    stronger, base_url = start_api(settings, tmp_path / "api.log", {"DAMAI_PASSWORDS__TIME_COST": "3"})
    adapters = await Adapters.open(system.settings, index_templates=False)
    try:

        async def hash_params() -> str:
            user = await load_user(adapters.db, user_id)
            assert user is not None
            return user.password_hash.split("$")[3]

        assert await hash_params() == "m=19456,t=1,p=1"
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            session = await http.post("/api/v1/sessions", json={"mobile": mobile, "password": PASSWORD})
        assert session.status_code == 201, session.text

        await eventually(lambda: _is(hash_params, "m=19456,t=3,p=1"), 10, "the rehashed password")
        assert (await log_in(system, mobile=mobile)).status_code == 201
        assert (await log_in(system, "wrong-horse-1", mobile=mobile)).status_code == 401
    finally:
        stronger.stop()
        await adapters.close()


async def _is(read, expected: str) -> bool:
    return bool(await read() == expected)

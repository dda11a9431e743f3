import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from infra.redis import LUA_DIR, LuaScripts


async def test_redis_answers_and_round_trips_a_value(redis: Redis):
    key = f"test:{uuid.uuid4()}"
    await redis.set(key, "座位", ex=30)

    assert await redis.ping() is True
    assert await redis.get(key) == "座位".encode()


async def test_every_lua_script_is_registered_by_name(redis: Redis):
    scripts = LuaScripts(redis)

    assert sorted(scripts.names()) == sorted(p.stem for p in LUA_DIR.glob("*.lua"))
    await scripts.preload(redis)


async def test_fixed_window_limit_refuses_hits_over_the_limit(redis: Redis):
    scripts = LuaScripts(redis)
    key = f"rl:{{test:{uuid.uuid4()}}}:hits"

    results = [await scripts["fixed_window_limit"](keys=[key], args=[2, 60_000]) for _ in range(3)]

    assert [r[0] for r in results] == [1, 1, 0]
    assert [r[1] for r in results] == [1, 2, 3]
    assert 0 < results[2][2] <= 60_000


async def test_fixed_window_limit_rejects_a_bad_limit(redis: Redis):
    scripts = LuaScripts(redis)

    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
        await scripts["fixed_window_limit"](keys=[f"rl:{{t}}:{uuid.uuid4()}"], args=[0, 1000])

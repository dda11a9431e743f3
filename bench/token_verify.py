"""Cost of admitting a signed-in request: the access token's check, with and without revocation.

1. ``AccessTokens.verify`` alone (HS256, PyJWT).
2. ``verify`` + ``RevokedTokens.is_revoked`` with ``--revoked`` token ids loaded from the
   revocation stream (the design: a local set each process keeps by tailing the stream).
3. Baseline for comparison: ``verify`` + one Redis ``SISMEMBER`` round trip per request on a set
   of the same token ids (the design it replaces).

Each path runs ``--iterations`` requests per round, one after another on one event loop; the
figure is the median over ``--rounds`` rounds of the mean µs per request in a round. The token
checked is not revoked (the common case). Also printed: how long a process takes to read the
whole stream at start. The keys live under a prefix of the run's own, deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from infra.logging import configure_logging
from infra.redis import create_redis
from infra.redis_keys import revoked_tokens
from infra.revocations import EXP_FIELD, JTI_FIELD, RevokedTokens
from infra.settings import Settings, get_settings
from infra.tokens import AccessTokens

BATCH = 1_000


async def fill(redis: Redis, stream: str, members: str, count: int, exp: int) -> None:
    """``count`` revocations in the stream, and the same token ids in a plain set (the baseline's)."""
    for first in range(0, count, BATCH):
        jtis = [uuid.uuid4().hex for _ in range(min(BATCH, count - first))]
        async with redis.pipeline(transaction=False) as pipe:
            for jti in jtis:
                pipe.xadd(stream, {JTI_FIELD: jti, EXP_FIELD: str(exp)})
            pipe.sadd(members, *jtis)
            await pipe.execute()


async def per_request_us(check: Callable[[], Awaitable[object]], iterations: int) -> float:
    started = time.perf_counter()
    for first in range(0, iterations, BATCH):
        for _ in range(min(BATCH, iterations - first)):
            await check()
        # Yield now and then, as a serving process does: the stream's reader runs on this loop.
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / iterations * 1e6


async def measure(settings: Settings, revoked_count: int, iterations: int, rounds: int) -> dict[str, list[float]]:
    users = settings.users.model_copy(update={"key_prefix": f"bench{uuid.uuid4().hex[:8]}"})
    stream, members = revoked_tokens(users.key_prefix), f"{users.key_prefix}:{{sessions}}:revoked-set"
    tokens = AccessTokens(settings.tokens)
    token = tokens.issue(42).token
    redis = create_redis(settings.redis)
    figures: dict[str, list[float]] = {}
    try:
        await fill(redis, stream, members, revoked_count, int(time.time()) + settings.tokens.access_token_ttl_s)
        revoked = RevokedTokens(redis, users, settings.tokens.access_token_ttl_s, leeway_s=settings.tokens.leeway_s)
        started = time.perf_counter()
        await revoked.start()
        figures["start: read the whole stream (ms)"] = [(time.perf_counter() - started) * 1000]
        assert len(revoked) == revoked_count

        async def verify() -> object:
            return tokens.verify(token)

        async def verify_local() -> object:
            return revoked.is_revoked(tokens.verify(token).token_id)

        async def verify_round_trip() -> object:
            return await redis.sismember(members, tokens.verify(token).token_id)

        paths = {
            "verify": verify,
            f"verify + is_revoked (local, {revoked_count:,} revoked)": verify_local,
            "baseline: verify + Redis SISMEMBER": verify_round_trip,
        }
        for _ in range(rounds):
            for name, check in paths.items():
                figures.setdefault(name, []).append(await per_request_us(check, iterations))
        await revoked.stop()
    finally:
        await redis.delete(stream, members)
        await redis.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revoked", type=int, default=100_000, help="revoked token ids loaded")
    parser.add_argument("--iterations", type=int, default=20_000, help="requests per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)  # to stderr, apart from the figures
    figures = asyncio.run(measure(settings, args.revoked, args.iterations, args.rounds))
    print(f"{args.iterations:,} requests per path per round, medians of {args.rounds} rounds")
    start = figures.pop("start: read the whole stream (ms)")[0]
    medians = {name: statistics.median(values) for name, values in figures.items()}
    baseline = medians["verify"]
    print(f"{'path':<48} {'µs/request':>11} {'vs verify':>10}")
    for name, us in medians.items():
        print(f"{name:<48} {us:>11.1f} {us / baseline:>10.2f}")
    for name, values in figures.items():
        print(f"  rounds of {name}: {', '.join(f'{v:.1f}' for v in values)} µs")
    print(f"start with {args.revoked:,} revocations in the stream: {start:,.0f} ms")


if __name__ == "__main__":
    main()

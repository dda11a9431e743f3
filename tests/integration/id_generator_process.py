"""One id-issuing process for the multi-process test: leases a worker id and prints ids.

Run as ``python -m tests.integration.id_generator_process --count N --start-at UNIX_S``;
settings (the Redis key tag above all) come from DAMAI_* variables. Output, on stdout:
``worker <n>``, then per round ``entity <id>`` and ``order <id> <gene>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from infra.ids import IdService
from infra.ids.layout import GENE_BITS
from infra.logging import configure_logging
from infra.redis import LuaScripts, create_redis
from infra.settings import get_settings


async def issue(count: int, start_at: float) -> list[str]:
    settings = get_settings()
    redis = create_redis(settings.redis)
    try:
        async with IdService.start(redis, LuaScripts(redis), settings.ids) as ids:
            lines = [f"worker {ids.worker_id}"]
            # Every process starts issuing at the same moment, so their ids interleave in time.
            await asyncio.sleep(max(0.0, start_at - time.time()))
            for round_ in range(count):
                gene = round_ % (1 << GENE_BITS)
                lines.append(f"entity {ids.next_entity_id()}")
                lines.append(f"order {ids.next_order_number(gene)} {gene}")
            return lines
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True, help="Unix time to start issuing at")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    lines = asyncio.run(issue(args.count, args.start_at))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

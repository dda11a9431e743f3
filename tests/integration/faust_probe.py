"""A probe worker built with the project's Faust factory: counts events per partition in a table.

Run as ``python -m tests.integration.faust_probe``; settings come from DAMAI_* variables.
Each event appends ``<partition>:<count>`` to a Redis list, so a test can see whether
the table's counts survived a restart (recovered from its changelog).
"""

from __future__ import annotations

import faust
import redis
from faust.types import StreamT

from infra.logging import configure_logging
from infra.settings import get_settings
from projections.app import create_app
from projections.topics import declare_topics


def probe_key(group: str) -> str:
    return f"probe:{group}"


def build() -> faust.App:
    settings = get_settings()
    app = create_app(settings, group=settings.worker.projector_group)
    topics = declare_topics(app, settings)
    counts = app.Table("partition-counts", default=int, partitions=settings.kafka.topics["reference"].partitions)
    sink = redis.Redis(
        host=settings.redis.host, port=settings.redis.port, socket_timeout=settings.redis.socket_timeout_s
    )
    key = probe_key(app.conf.id)

    @app.agent(topics.reference, name="probe")
    async def probe(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            partition = event.message.partition
            counts[f"p{partition}"] += 1
            sink.rpush(key, f"{partition}:{counts[f'p{partition}']}")

    return app


if __name__ == "__main__":
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    faust.Worker(build(), loglevel=settings.log_level, override_logging=False).execute_from_commandline()

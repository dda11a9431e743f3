"""The Faust side of the projector benchmark: the project's app factory and projector runner."""

from __future__ import annotations

import faust
from faust.types import StreamT

from bench.bench_projection import BenchProjector
from infra.logging import configure_logging
from infra.postgres.pools import ShardPools
from infra.settings import get_settings
from projections.app import create_app
from projections.dead_letter import DeadLetters
from projections.projector import run_projector
from projections.topics import declare_topics


def build() -> faust.App:
    settings = get_settings()
    app = create_app(settings, group=settings.worker.projector_group)
    topics = declare_topics(app, settings)
    dead_letters = DeadLetters(topics.dead_letter, app.conf.id)
    pools = ShardPools(settings.postgres)

    @app.agent(topics.reference, name="bench-projector")
    async def project(stream: StreamT[bytes]) -> None:
        await pools.start()
        projector = BenchProjector(f"{app.conf.id}.faust", pools[settings.postgres.databases[0]])
        await run_projector(stream, projector, dead_letters, settings.worker)

    return app


if __name__ == "__main__":
    settings = get_settings()
    configure_logging("WARNING", settings.log_json)
    faust.Worker(build(), loglevel="WARNING", override_logging=False).execute_from_commandline()

"""The projector worker: a Faust app with the projectors wired to their stores."""

from __future__ import annotations

import faust
from faust.types import StreamT

from infra.search import index_name
from infra.settings import Settings
from projections.app import create_app
from projections.dead_letter import DeadLetters
from projections.inventory_projector import InventoryProjector
from projections.program_projector import ProgramProjector
from projections.projector import run_projector
from projections.reference_projector import ReferenceProjector
from projections.stores import Stores
from projections.topics import declare_topics


def build_projector_app(settings: Settings, *, web_port: int | None = None) -> faust.App:
    app = create_app(settings, group=settings.worker.projector_group, web_port=web_port)
    topics = declare_topics(app, settings)
    stores = Stores(settings)
    app.add_dependency(stores)
    dead_letters = DeadLetters(topics.dead_letter, app.conf.id)

    @app.agent(topics.reference, name="reference-projector")
    async def project_reference(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        projector = ReferenceProjector(
            f"{app.conf.id}.reference",
            stores.pools,
            stores.es,
            index_name(settings.elasticsearch, "area"),
        )
        await run_projector(stream, projector, dead_letters, settings.worker)

    @app.agent(topics.program, name="program-projector")
    async def project_programs(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        projector = ProgramProjector(
            f"{app.conf.id}.program", stores.pools, stores.layout, stores.redis, settings, stores.es
        )
        await run_projector(stream, projector, dead_letters, settings.worker)

    # A second agent on the same topic: the inventory advances independently of Postgres.
    @app.agent(topics.program, name="inventory-projector")
    async def project_inventory(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        projector = InventoryProjector(f"{app.conf.id}.inventory", stores.redis, stores.scripts)
        await run_projector(stream, projector, dead_letters, settings.worker)

    return app


def run_worker(settings: Settings) -> None:
    """Run the projector worker in the foreground until SIGTERM/SIGINT."""
    app = build_projector_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False)
    worker.execute_from_commandline()

"""The projector worker: a Faust app with the projectors wired to their stores."""

from __future__ import annotations

from typing import Any

import faust
import structlog
from faust.types import StreamT

from infra.collector import tune_for_batches
from infra.metrics import serve_metrics
from infra.settings import Settings
from projections.app import create_app
from projections.dead_letter import DeadLetters
from projections.inventory_projector import InventoryProjector
from projections.lag import ConsumerLag
from projections.order_projector import OrderProjector
from projections.payment_projector import PaymentProjector
from projections.program_projector import ProgramProjector
from projections.projector import Projector, run_projector
from projections.reference_projector import ReferenceProjector
from projections.rewind import rewind_to_applied
from projections.search_availability import SearchAvailabilityProjector
from projections.search_index import SearchIndex
from projections.stores import Stores
from projections.topics import declare_topics
from projections.user_projector import UserProjector

log = structlog.get_logger(__name__)


def build_projector_app(settings: Settings, *, web_port: int | None = None) -> faust.App:
    app = create_app(settings, group=settings.worker.projector_group, web_port=web_port)
    topics = declare_topics(app, settings)
    stores = Stores(settings)
    app.add_dependency(stores)
    db, redis, es = stores.adapters.db, stores.adapters.redis, stores.adapters.es
    dead_letters = DeadLetters(topics.dead_letter, app.conf.id)
    reference = ReferenceProjector(f"{app.conf.id}.reference", db.pools)
    program = ProgramProjector(f"{app.conf.id}.program", db.pools, db.layout, redis, settings, es)
    # A second agent on the program topic: the inventory advances independently of Postgres.
    inventory = InventoryProjector(f"{app.conf.id}.inventory", redis, stores.adapters.scripts)
    user = UserProjector(f"{app.conf.id}.user", db.pools, db.layout, redis, stores.adapters.scripts, settings)
    order = OrderProjector(f"{app.conf.id}.order", db.pools, db.layout)
    payment = PaymentProjector(f"{app.conf.id}.payment", db.pools, db.layout)
    # A second agent on the order topic: the search documents' sold-out state, from the inventory.
    availability = SearchAvailabilityProjector(
        f"{app.conf.id}.search-availability", SearchIndex(es, db, redis, settings)
    )
    availability_batches = settings.worker.model_copy(
        update={
            "batch_size": settings.search_availability.batch_size,
            "batch_within_s": settings.search_availability.batch_within_s,
        }
    )

    @app.agent(topics.reference, name="reference-projector")
    async def project_reference(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, reference, dead_letters, settings.worker)

    @app.agent(topics.program, name="program-projector")
    async def project_programs(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, program, dead_letters, settings.worker)

    @app.agent(topics.program, name="inventory-projector")
    async def project_inventory(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, inventory, dead_letters, settings.worker)

    @app.agent(topics.user, name="user-projector")
    async def project_users(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, user, dead_letters, settings.worker)

    @app.agent(topics.order, name="order-projector")
    async def project_orders(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, order, dead_letters, settings.worker)

    @app.agent(topics.payment, name="payment-projector")
    async def project_payments(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, payment, dead_letters, settings.worker)

    @app.agent(topics.order, name="search-availability")
    async def project_search_availability(stream: StreamT[bytes]) -> None:
        await stores.wait_ready()
        await run_projector(stream, availability, dead_letters, availability_batches)

    # The search availability processor is left out: it keeps no offsets (it reads Redis).
    projectors_by_topic: dict[str, list[Projector]] = {
        settings.kafka.topic("reference"): [reference],
        settings.kafka.topic("program"): [program, inventory],
        settings.kafka.topic("user"): [user],
        settings.kafka.topic("order"): [order],
        settings.kafka.topic("payment"): [payment],
    }

    lag = ConsumerLag(
        settings.kafka.bootstrap,
        app.conf.id,
        lambda: app.consumer.assignment(),
        settings.observability.lag_interval_s,
    )

    @app.task  # type: ignore[untyped-decorator]  # faust types its decorators loosely
    async def measure_lag() -> None:
        await lag.run()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types the signal loosely
    async def rewind(sender: faust.App, **_: Any) -> None:
        await stores.wait_ready()
        try:
            await rewind_to_applied(sender, projectors_by_topic, settings.kafka.bootstrap)
        except Exception as exc:  # noqa: BLE001 — a rewind that fails must not fail the rebalance
            log.error("projector.rewind_failed", error=repr(exc))

    return app


def run_worker(settings: Settings) -> None:
    """Run the projector worker in the foreground until SIGTERM/SIGINT, with its /metrics."""
    serve_metrics(settings, "worker")
    app = build_projector_app(settings)
    tune_for_batches()
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False)
    worker.execute_from_commandline()

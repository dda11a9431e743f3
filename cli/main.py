"""``damai``: the one command-line entry point (stack, db, serve, worker, seed, run)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
import uvloop  # the deciders' event loop, as uvicorn's for the API (docs/orders.md, "Measured")

from cli.context import command_settings
from cli.events import app as events_app
from cli.logs import logs as logs_command
from cli.rebuild_postgres import rebuild_postgres_command, verify_postgres_command
from cli.rebuild_redis import rebuild_redis_command, verify_redis_command
from cli.rebuild_search import rebuild_search_command, verify_search_command
from cli.status import status as status_command
from infra.settings import Settings, get_settings

app = typer.Typer(help="Damai ticketing: operate the stack, the API and the stream workers.", no_args_is_help=True)
stack_app = typer.Typer(help="The local PostgreSQL, Redis, Kafka and Elasticsearch.", no_args_is_help=True)
db_app = typer.Typer(help="Shard databases: schema migrations.", no_args_is_help=True)
seed_app = typer.Typer(help="Demo data, published through the commands.", no_args_is_help=True)
cache_app = typer.Typer(help="The program detail cache: Bloom filter and invalidation.", no_args_is_help=True)
verify_app = typer.Typer(help="Check that the stores agree with each other.", no_args_is_help=True)
rebuild_app = typer.Typer(help="Rebuild read models from the log while the system runs.", no_args_is_help=True)
rebuild_bloom_app = typer.Typer(help="Bloom filters, from Postgres (a full route).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(cache_app, name="cache")
app.add_typer(verify_app, name="verify")
app.add_typer(rebuild_app, name="rebuild")
app.add_typer(events_app, name="events")
rebuild_app.command("postgres")(rebuild_postgres_command)
verify_app.command("postgres")(verify_postgres_command)
rebuild_app.command("search")(rebuild_search_command)
verify_app.command("search")(verify_search_command)
rebuild_app.command("redis")(rebuild_redis_command)
verify_app.command("redis")(verify_redis_command)
app.command("logs")(logs_command)
app.command("status")(status_command)
rebuild_app.add_typer(rebuild_bloom_app, name="bloom")

Services = Annotated[
    list[str] | None,
    typer.Argument(help="postgres, redis, kafka, elasticsearch (default: all); prometheus, only when named"),
]


@stack_app.command("up")
def stack_up(services: Services = None) -> None:
    """Install what is missing, start, wait for health, then create topics and index templates."""
    from cli import provision
    from infra import stack

    settings = command_settings()
    started = time.monotonic()
    stack.up(settings, services)
    wanted = set(services or stack.SERVICES)
    if "kafka" in wanted:
        asyncio.run(provision.create_topics(settings))
    if "elasticsearch" in wanted:
        asyncio.run(provision.apply_templates(settings))
    typer.echo(f"stack up in {time.monotonic() - started:.1f}s")
    _print_status(settings)


@stack_app.command("down")
def stack_down(services: Services = None) -> None:
    """Stop the services (all by default); data stays in the state directory."""
    from infra import stack

    stack.down(command_settings(), services)


@stack_app.command("status")
def stack_status() -> None:
    """Each service with its address and health; exit 1 if any is down."""
    if not _print_status(command_settings()):
        raise typer.Exit(1)


def _print_status(settings: Settings) -> bool:
    from infra import stack

    rows = stack.status(settings)
    for s in rows:
        rss = f"{s.rss_mb:.0f} MiB" if s.rss_mb is not None else "-"
        health = "healthy" if s.healthy else "DOWN"
        typer.echo(f"{s.name:<14} {s.address:<28} {health:<8} pid={s.pid or '-':<8} rss={rss:<9} {s.detail}")
    return all(s.healthy for s in rows)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations to every shard database (re-running is a no-op)."""
    from cli import provision

    applied = asyncio.run(provision.migrate(command_settings()))
    for database, runs in applied.items():
        typer.echo(f"{database}: {f'{len(runs)} migration runs applied' if runs else 'up to date'}")


@db_app.command("layout")
def db_layout() -> None:
    """Print the shard layout: for each shard group, its tables in each database."""
    from infra.postgres.routing import REFERENCE_TABLES, SHARD_GROUPS, shard_layout

    layout = shard_layout(command_settings())
    for group, families in SHARD_GROUPS.items():
        typer.echo(f"{group} ({layout.slots(group)} tables per family): {', '.join(families)}")
        for database in layout.databases:
            typer.echo(f"  {database}: {', '.join(t for f in families for t in layout.tables_in(database, f))}")
    typer.echo(f"reference (whole in every database): {', '.join(REFERENCE_TABLES)}")


@db_app.command("verify")
def db_verify() -> None:
    """Check that every expected physical table exists with every migration applied; exit 1 if not."""
    from cli import provision

    report = asyncio.run(provision.verify_schema(command_settings()))
    for table in report.missing_tables:
        typer.echo(f"missing table: {table}")
    for run in report.unapplied:
        typer.echo(f"not applied: {run}")
    if not report.ok:
        raise typer.Exit(1)
    typer.echo("schema verified: every table present, every migration applied")


@cache_app.command("bloom-rebuild")
def cache_bloom_rebuild() -> None:
    """Add every program in Postgres to the Bloom filter of program ids (a full route); exit 1 if
    another process is building it now."""
    from bootstrap import Adapters
    from queries.cache import rebuild_program_bloom

    settings = command_settings()

    async def rebuild() -> int | None:
        adapters = await Adapters.open(settings, index_templates=False)
        try:
            return await rebuild_program_bloom(adapters.redis, settings, adapters.db)
        finally:
            await adapters.close()

    added = asyncio.run(rebuild())
    if added is None:
        typer.echo("another process is building the filter now")
        raise typer.Exit(1)
    typer.echo(f"Bloom filter live with {added} programs from Postgres")


@rebuild_bloom_app.command("users")
def rebuild_bloom_users() -> None:
    """Add every mobile and email held in Postgres to the registration Bloom filter (a full route);
    exit 1 if another process is building it now."""
    from bootstrap import Adapters
    from queries.cache.user_bloom import rebuild_user_bloom

    settings = command_settings()

    async def rebuild() -> int | None:
        adapters = await Adapters.open(settings, index_templates=False)
        try:
            return await rebuild_user_bloom(adapters.redis, settings.users, adapters.db)
        finally:
            await adapters.close()

    added = asyncio.run(rebuild())
    if added is None:
        typer.echo("another process is building the filter now")
        raise typer.Exit(1)
    typer.echo(f"registration Bloom filter live with {added} mobiles and emails from Postgres")


@cache_app.command("invalidate")
def cache_invalidate(program_id: Annotated[int, typer.Argument(help="Program id")]) -> None:
    """Drop one program's cached detail from Redis and from every API process's memory."""
    from infra.redis import create_redis
    from queries.cache import invalidate_program

    settings = command_settings()

    async def invalidate() -> None:
        redis = create_redis(settings.redis)
        try:
            await invalidate_program(redis, settings, program_id)
        finally:
            await redis.aclose()

    asyncio.run(invalidate())
    typer.echo(f"program {program_id} invalidated")


@verify_app.command("inventory")
def verify_inventory(
    program_id: Annotated[
        int | None, typer.Option("--program", help="Only this program (default: all, a full route)")
    ] = None,
) -> None:
    """Check each program's Redis seat inventory against its layout in Postgres; exit 1 on any disagreement."""
    from bootstrap import Adapters
    from projections.verify import Disagreement, verify_all_inventories, verify_program_inventory

    settings = command_settings()

    async def verify() -> tuple[int, list[Disagreement]]:
        adapters = await Adapters.open(settings, index_templates=False)
        db, redis = adapters.db, adapters.redis
        try:
            if program_id is not None:
                return 1, await verify_program_inventory(db, redis, program_id)
            checked, found = 0, []
            async for _, disagreements in verify_all_inventories(db, redis):
                checked += 1
                found += disagreements
            return checked, found
        finally:
            await adapters.close()

    checked, found = asyncio.run(verify())
    for disagreement in found:
        typer.echo(str(disagreement))
    typer.echo(f"{checked} programs checked, {len(found)} disagreements")
    if found:
        raise typer.Exit(1)


@verify_app.command("orders")
def verify_orders(
    program_id: Annotated[
        int | None, typer.Option("--program", help="Only this program (default: all, a full route)")
    ] = None,
) -> None:
    """Check each program's orders across Redis and Postgres (seats held once, remaining counts, account
    totals, seat rows); exit 1 on any difference."""
    from bootstrap import Adapters
    from projections.verify import OrdersReport, verify_all_orders, verify_program_orders

    settings = command_settings()

    async def verify() -> list[OrdersReport]:
        adapters = await Adapters.open(settings, index_templates=False)
        db, redis = adapters.db, adapters.redis
        try:
            if program_id is not None:
                return [await verify_program_orders(db, redis, program_id)]
            return [report async for report in verify_all_orders(db, redis)]
        finally:
            await adapters.close()

    reports = asyncio.run(verify())
    for report in reports:
        typer.echo(report.summary())
        for difference in report.differences:
            typer.echo(f"  {difference}")
    differences = sum(len(r.differences) for r in reports)
    typer.echo(f"{len(reports)} programs checked, {differences} differences")
    if differences:
        raise typer.Exit(1)


@rebuild_app.command("inventory")
def rebuild_inventory(program_id: Annotated[int, typer.Option("--program", help="The program to rebuild")]) -> None:
    """Replace one program's Redis purchase state (inventory, decisions, accounts, documents) with the one
    its log describes, atomically; exit 1 if its state kept changing (pause its sale, then run again)."""
    from infra.redis import create_redis
    from projections.rebuild_inventory import RebuildRefused, Rebuilt, rebuild_program_inventory

    settings = command_settings()

    async def rebuild() -> Rebuilt:
        redis = create_redis(settings.redis)
        try:
            return await rebuild_program_inventory(settings, redis, program_id)
        finally:
            await redis.aclose()

    try:
        rebuilt = asyncio.run(rebuild())
    except RebuildRefused as refused:
        typer.echo(str(refused))
        raise typer.Exit(1) from refused
    typer.echo(
        f"program {program_id} rebuilt from the log: {rebuilt.catalogue_events} catalogue events,"
        f" {rebuilt.decisions} decisions ({rebuilt.live_orders} held or sold), attempt {rebuilt.attempts}"
    )


@rebuild_app.command("snapshots")
def rebuild_snapshots(
    every_partition: Annotated[
        bool, typer.Option("--all", help="Every partition, not only those without snapshot coverage")
    ] = False,
) -> None:
    """Put back the command side's aggregate snapshots from the log, then record each partition's
    snapshot coverage, so a first claim needs no partition read (ADR 0007). Safe while commands run;
    reads each partition it rebuilds once. `damai stack up` does this for partitions without coverage."""
    from cli import provision

    reports = asyncio.run(provision.cover_snapshots(command_settings(), rebuild_all=every_partition))
    for report in reports:
        typer.echo(
            f"{report.topic}: {report.events} events read, {report.written} snapshots written,"
            f" covered {report.covered}" + (f", left uncovered {report.uncovered}" if report.uncovered else "")
        )
    if not reports:
        typer.echo("every partition of the store's logs already has snapshot coverage")
    if any(r.uncovered for r in reports):
        raise typer.Exit(1)


@seed_app.command("demo")
def seed_demo(
    seed: Annotated[int, typer.Option(help="Seed of the generated catalogue: same seed, same programs")] = 7,
    programs: Annotated[bool, typer.Option(help="Also the demo programs, not only the reference data")] = True,
) -> None:
    """Publish the demo data through the commands: areas, categories, ~70 programs (idempotent)."""
    from cli.demo.seed import seed_demo

    seeded = asyncio.run(seed_demo(command_settings(), seed=seed if programs else None))
    typer.echo(f"published: {seeded.areas} areas, {seeded.categories} categories, {seeded.programs} programs")


@app.command()
def config(
    write_doc: Annotated[bool, typer.Option(help="Rewrite the defaults table in docs/configuration.md")] = False,
) -> None:
    """Every setting: its DAMAI_* variable and the value in effect."""
    from infra.settings_doc import setting_rows, write_configuration_doc

    if write_doc:
        write_configuration_doc()
        return
    for env, value, _ in setting_rows(get_settings()):
        typer.echo(f"{env}={value}")


@app.command()
def openapi(
    write_doc: Annotated[bool, typer.Option(help="Rewrite docs/openapi.json")] = False,
) -> None:
    """The OpenAPI document the API publishes at /openapi.json."""
    from api.app import create_app
    from api.openapi import openapi_text
    from infra.settings import REPO_ROOT

    text = openapi_text(create_app(Settings()))
    if write_doc:
        (REPO_ROOT / "docs" / "openapi.json").write_text(text, encoding="utf-8")
        return
    typer.echo(text, nl=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = command_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the projector stream worker (a Faust app; one consumer group)."""
    from projections.worker import run_worker

    run_worker(command_settings())


@app.command()
def allocator() -> None:
    """Run a seat allocator: decides order requests (one consumer group; run several to share partitions)."""
    from projections.allocator import Allocator
    from projections.deciders import run_decider

    uvloop.run(run_decider(command_settings(), Allocator))


@app.command()
def lifecycle() -> None:
    """Run an order lifecycle: cancels, expires at the payment deadline, records payments (one consumer group)."""
    from bootstrap import payment_providers
    from projections.deciders import run_decider
    from projections.lifecycle import Lifecycle

    settings = command_settings()
    providers = payment_providers(settings)
    uvloop.run(run_decider(settings, lambda s, r, sc, p: Lifecycle(s, r, sc, p, providers)))


@app.command()
def payments() -> None:
    """Run a payment processor: payments to their orders, refunds at the provider (retried), and the
    reconciler of bills left without a notification (one consumer group)."""
    from bootstrap import payment_providers
    from infra.aggregate_store import AggregateStore
    from projections.deciders import run_decider
    from projections.payments import PaymentProcessor

    settings = command_settings()
    providers = payment_providers(settings)
    uvloop.run(
        run_decider(
            settings,
            lambda s, r, sc, p: PaymentProcessor(s, r, sc, p, providers, AggregateStore(s, r, sc, p)),
        )
    )


@app.command("sandbox-pay")
def sandbox_pay() -> None:
    """Run the payment sandbox: a local provider speaking the Alipay protocol, with fault controls
    (docs/payments.md); `damai run` starts it."""
    from cli.sandbox_pay import serve

    serve(command_settings())


@app.command()
def run(
    seed: Annotated[bool, typer.Option(help="Publish the demo data first")] = True,
    stack: Annotated[
        bool, typer.Option(help="Bring the local stack up and migrate first (--no-stack: they are ready already)")
    ] = True,
) -> None:
    """Bring the stack up, migrate, seed the demo data, and run the API, a worker, an allocator, an order
    lifecycle, a payment processor and the payment sandbox, each restarted with a backoff when it dies,
    until Ctrl-C or SIGTERM stops them all."""
    from cli.supervise import ProcessSpec, Supervisor

    if stack:
        stack_up(None)
        db_migrate()
    settings = get_settings()
    processes = [
        ProcessSpec("worker", ("worker",)),
        ProcessSpec("allocator", ("allocator",)),
        ProcessSpec("lifecycle", ("lifecycle",)),
        ProcessSpec("payments", ("payments",)),
        ProcessSpec("sandbox-pay", ("sandbox-pay",)),
        ProcessSpec("api", ("serve",)),
    ]
    with Supervisor(processes, settings.run, say=lambda line: typer.echo(f"damai run: {line}", err=True)) as running:
        if seed:
            seed_demo()
        typer.echo(
            f"API on http://{settings.api.host}:{settings.api.port}: a process that dies is restarted;"
            " Ctrl-C stops them all"
        )
        running.watch()


if __name__ == "__main__":
    app()

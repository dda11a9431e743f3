"""Publishing the demo data through the command handlers; what already exists is left alone."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from aggregates.errors import Conflict
from bootstrap import Adapters, CommandSide, open_command_side
from cli.demo.areas import demo_area_commands
from cli.demo.categories import demo_category_commands
from cli.demo.programs import demo_program_commands
from commands import program as programs
from commands.reference import add_area, add_category
from infra.settings import Settings
from queries.views.programs import full_route_program_ids_by_title

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Seeded:
    areas: int
    categories: int
    programs: int = 0


async def seed_demo(settings: Settings, *, seed: int | None = None, limit: int | None = None) -> Seeded:
    """Append the demo data that does not exist yet; return how much was appended.

    Reference data always (an area or category that exists is refused by its handler and left
    alone); with a ``seed``, also the demo catalogue of programs (the first ``limit`` of them, if
    given), idempotent by title: a program whose title is in the read model is left alone.
    """
    async with AsyncExitStack() as exit_stack:
        adapters = await Adapters.open(settings)
        exit_stack.push_async_callback(adapters.close)
        side = await open_command_side(adapters, exit_stack)
        areas = await _add_areas(side)
        categories = await _add_categories(side)
        added = await _add_programs(adapters, side.catalogue, seed, limit) if seed is not None else 0
        log.info("seed.demo", areas=areas, categories=categories, programs=added)
        return Seeded(areas, categories, added)


async def _add_areas(side: CommandSide) -> int:
    added = 0
    for cmd in demo_area_commands():  # parents come before their children
        try:
            await add_area(cmd, side.reference, None)
            added += 1
        except Conflict as refused:
            if refused.code != "AREA_EXISTS":
                raise
    return added


async def _add_categories(side: CommandSide) -> int:
    added = 0
    for cmd in demo_category_commands():
        try:
            await add_category(cmd, side.reference, None)
            added += 1
        except Conflict as refused:
            if refused.code != "CATEGORY_EXISTS":
                raise
    return added


async def _add_programs(adapters: Adapters, catalogue: programs.Catalogue, seed: int, limit: int | None) -> int:
    wanted = demo_program_commands(seed, datetime.now(UTC))[:limit]
    existing = await full_route_program_ids_by_title(adapters.db, [cmd.title for cmd, _ in wanted])
    added = 0
    for cmd, on_sale in wanted:
        if cmd.title in existing:
            continue
        accepted = await programs.create_program(cmd, catalogue, None)
        if on_sale:
            await programs.publish_program(accepted.program_id, catalogue, None)
        added += 1
    return added

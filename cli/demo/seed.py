"""Publishing the demo data through the command handlers; what already exists is left alone."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from bootstrap import Adapters, ReadModelReferences, open_command_side
from cli.demo.areas import demo_area_commands
from cli.demo.categories import demo_category_commands
from cli.demo.programs import demo_program_commands
from commands import program as programs
from commands.reference import Reference, ReferenceReads, add_area, add_category
from infra.settings import Settings
from queries.views.programs import full_route_program_ids_by_title

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Seeded:
    areas: int
    categories: int
    programs: int = 0


class SeededReferences:
    """The reference read model plus what this run has just appended: a parent area or a
    category created a moment ago may not be projected yet, and its children are next."""

    def __init__(self, reads: ReferenceReads):
        self._reads = reads
        self.areas: set[int] = set()
        self.categories: dict[int, int | None] = {}

    async def existing_area_ids(self, area_ids: list[int]) -> set[int]:
        return await self._reads.existing_area_ids(area_ids) | (self.areas & set(area_ids))

    async def category_parents(self, category_ids: list[int]) -> dict[int, int | None]:
        known = {c: self.categories[c] for c in category_ids if c in self.categories}
        return await self._reads.category_parents(category_ids) | known


async def seed_demo(settings: Settings, *, seed: int | None = None, limit: int | None = None) -> Seeded:
    """Append the demo data not yet in the read model; return how much was appended.

    Reference data always; with a ``seed``, also the demo catalogue of programs (the first
    ``limit`` of them, if given), idempotent by title: a program whose title exists is left alone.
    """
    async with AsyncExitStack() as exit_stack:
        adapters = await Adapters.open(settings)
        exit_stack.push_async_callback(adapters.close)
        side = await open_command_side(adapters, exit_stack)
        references = SeededReferences(ReadModelReferences(adapters.db))
        reference = Reference(references, side.reference.log)
        areas = await _add_areas(reference, references)
        categories = await _add_categories(reference, references)
        added = 0
        if seed is not None:
            catalogue = programs.Catalogue(
                side.catalogue.store, references, side.ids, side.catalogue.clock, side.catalogue.limits
            )
            added = await _add_programs(adapters, catalogue, seed, limit)
        log.info("seed.demo", areas=areas, categories=categories, programs=added)
        return Seeded(areas, categories, added)


async def _add_areas(reference: Reference, references: SeededReferences) -> int:
    commands = demo_area_commands()
    existing = await references.existing_area_ids([c.area_id for c in commands])
    for cmd in commands:  # parents come before their children
        if cmd.area_id not in existing:
            await add_area(cmd, reference, None)
            references.areas.add(cmd.area_id)
    return len(references.areas)


async def _add_categories(reference: Reference, references: SeededReferences) -> int:
    commands = demo_category_commands()
    existing = await references.category_parents([c.category_id for c in commands])
    for cmd in commands:
        if cmd.category_id not in existing:
            await add_category(cmd, reference, None)
            references.categories[cmd.category_id] = cmd.parent_id
    return len(references.categories)


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



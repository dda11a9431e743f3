from collections import Counter
from datetime import UTC, datetime

from cli.demo.areas import DEMO_AREAS
from cli.demo.categories import DEMO_CATEGORIES
from cli.demo.programs import demo_program_commands, seats_of
from commands.program import KnownReferences
from events.program import SeatsLaidOut, TicketCategoryAdded
from tests.decided import create_program
from tests.id_sources import CountingIds

TODAY = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def references() -> KnownReferences:
    parents: dict[int, int | None] = {}
    for parent_id, _, children in DEMO_CATEGORIES:
        parents[parent_id] = None
        parents.update({child_id: parent_id for child_id, _ in children})
    return KnownReferences({code for code, *_ in DEMO_AREAS}, parents)


def test_demo_catalogue_covers_cities_categories_and_venue_sizes():
    programs = demo_program_commands(7, TODAY)

    assert len(programs) >= 60
    assert {cmd.parent_category_id for cmd, _ in programs} == {p for p, _, _ in DEMO_CATEGORIES}
    assert len({cmd.area_id for cmd, _ in programs}) >= 10
    sizes = sorted(seats_of(cmd) // len(cmd.show_times) for cmd, _ in programs)
    assert sizes[0] <= 500 and sizes[-1] == 50_000
    assert len({cmd.title for cmd, _ in programs}) == len(programs)
    assert Counter(publish for _, publish in programs)[False] > 0


def test_every_demo_program_passes_the_create_program_rules():
    ids = CountingIds()
    events = [e for cmd, _ in demo_program_commands(7, TODAY) for e in create_program(cmd, references(), ids, TODAY)]

    categories = {e.ticket_category_id: e.total for e in events if isinstance(e, TicketCategoryAdded)}
    laid_out = Counter(e.ticket_category_id for e in events if isinstance(e, SeatsLaidOut) for _ in e.seats)
    assert len(categories) > 100
    assert all(laid_out[tc] == total for tc, total in categories.items() if tc in laid_out)
    assert len(laid_out) < len(categories)  # the venues without seat choice sell by count


def test_same_seed_gives_the_same_catalogue_and_another_seed_another():
    first = [(c.title, seats_of(c)) for c, _ in demo_program_commands(7, TODAY)]

    assert first == [(c.title, seats_of(c)) for c, _ in demo_program_commands(7, TODAY)]
    assert first != [(c.title, seats_of(c)) for c, _ in demo_program_commands(8, TODAY)]

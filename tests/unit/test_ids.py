from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from infra.ids.errors import ClockAheadOfLease, ClockMovedBackwards
from infra.ids.generator import IdGenerator
from infra.ids.layout import (
    ENTITY_ID,
    EPOCH_MS,
    GENE_BITS,
    MAX_TIMESTAMP_MS,
    ORDER_NUMBER,
    WORKER_COUNT,
    IdLayout,
    IdParts,
    unix_ms_of,
    worker_id_of,
)
from infra.settings import IdSettings

LAYOUTS = [ENTITY_ID, ORDER_NUMBER]
START_MS = EPOCH_MS + 1_000_000
MAX_STEP_BACK_MS = 5

layouts = st.sampled_from(LAYOUTS)
genes = st.integers(0, (1 << GENE_BITS) - 1)


class ScriptedClock:
    """Reads out the given milliseconds in turn, then counts up from the highest, one per read."""

    def __init__(self, readings: list[int]):
        self._readings = iter(readings)
        self._highest = max(readings, default=START_MS)
        self.last_reading = START_MS

    def __call__(self) -> int:
        reading = next(self._readings, None)
        if reading is None:
            self._highest += 1
            reading = self._highest
        self.last_reading = reading
        return reading


class RecordedSleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def generator(
    layout: IdLayout, clock: ScriptedClock, sleep: RecordedSleeps | None = None, after_ms: int = EPOCH_MS - 1
) -> IdGenerator:
    return IdGenerator(
        layout,
        worker_id=7,
        max_step_back_ms=MAX_STEP_BACK_MS,
        issued_after_ms=after_ms,
        clock=clock,
        sleep=sleep if sleep is not None else RecordedSleeps(),
    )


@given(
    layout=layouts,
    unix_ms=st.integers(EPOCH_MS, MAX_TIMESTAMP_MS),
    worker_id=st.integers(0, WORKER_COUNT - 1),
    data=st.data(),
)
def test_unpack_returns_the_packed_parts_when_every_part_fits(layout, unix_ms, worker_id, data):
    sequence = data.draw(st.integers(0, layout.max_sequence))
    gene = data.draw(st.integers(0, layout.gene_count - 1))

    id_ = layout.pack(unix_ms, worker_id, sequence, gene)

    assert layout.unpack(id_) == IdParts(unix_ms, worker_id, sequence, gene)
    assert 0 <= id_ < 2**63


@pytest.mark.parametrize(
    ("unix_ms", "worker_id", "sequence", "gene"),
    [(EPOCH_MS - 1, 0, 0, 0), (MAX_TIMESTAMP_MS + 1, 0, 0, 0), (EPOCH_MS, WORKER_COUNT, 0, 0), (EPOCH_MS, 0, 64, 0)],
)
def test_pack_raises_when_a_part_does_not_fit(unix_ms, worker_id, sequence, gene):
    with pytest.raises(ValueError):
        ORDER_NUMBER.pack(unix_ms, worker_id, sequence, gene)


def test_timestamps_overflow_in_2095_when_counted_from_the_2026_epoch():
    assert datetime.fromtimestamp(EPOCH_MS / 1000, UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(MAX_TIMESTAMP_MS / 1000, UTC) == datetime(2095, 9, 7, 15, 47, 35, 551000, tzinfo=UTC)


@given(layout=layouts, steps=st.lists(st.integers(-3 * MAX_STEP_BACK_MS, 3), max_size=300), gene=genes)
def test_ids_strictly_increase_when_the_clock_steps_back_and_forth(layout, steps, gene):
    readings = [START_MS]
    for step in steps:
        readings.append(readings[-1] + step)
    clock = ScriptedClock(readings)
    ids = generator(layout, clock)
    issued: list[int] = []

    for _ in readings:
        try:
            issued.append(ids.next(gene % layout.gene_count))
        except ClockMovedBackwards:
            assert ids.last_ms - clock.last_reading > MAX_STEP_BACK_MS
        else:
            assert unix_ms_of(issued[-1]) == clock.last_reading

    assert all(earlier < later for earlier, later in pairwise(issued))


def test_next_waits_out_the_step_when_the_clock_steps_back_a_little():
    sleeps = RecordedSleeps()
    ids = generator(ENTITY_ID, ScriptedClock([START_MS, START_MS - 3, START_MS]), sleeps)
    first = ids.next()

    second = ids.next()

    assert sleeps == [0.003]
    assert ENTITY_ID.unpack(second) == IdParts(START_MS, 7, 1, 0)
    assert second > first


def test_next_refuses_when_the_clock_steps_back_too_far():
    ids = generator(ENTITY_ID, ScriptedClock([START_MS, START_MS - MAX_STEP_BACK_MS - 1, START_MS + 1]))
    first = ids.next()

    with pytest.raises(ClockMovedBackwards):
        ids.next()

    assert ids.next() > first


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_next_waits_for_the_next_ms_when_the_sequence_is_used_up(layout):
    per_ms = layout.max_sequence + 1
    sleeps = RecordedSleeps()
    ids = generator(layout, ScriptedClock([START_MS] * (per_ms + 3)), sleeps)

    issued = [ids.next() for _ in range(per_ms + 1)]

    assert [unix_ms_of(id_) for id_ in issued] == [START_MS] * per_ms + [START_MS + 1]
    assert [layout.sequence_of(id_) for id_ in issued] == [*range(per_ms), 0]
    assert sleeps == [0.0] * 3


def test_first_id_is_later_than_the_ms_it_must_follow_when_the_clock_reads_that_ms():
    ids = generator(ENTITY_ID, ScriptedClock([START_MS, START_MS]), after_ms=START_MS)

    assert unix_ms_of(ids.next()) == START_MS + 1


def test_first_id_is_refused_when_the_clock_is_far_behind_the_ms_it_must_follow():
    ids = generator(ENTITY_ID, ScriptedClock([START_MS]), after_ms=START_MS + 1_000)

    with pytest.raises(ClockMovedBackwards):
        ids.next()


def test_next_refuses_when_the_clock_is_past_the_ceiling_until_it_is_raised():
    ids = generator(ENTITY_ID, ScriptedClock([START_MS, START_MS]))
    ids.cover_until(START_MS - 1)

    with pytest.raises(ClockAheadOfLease):
        ids.next()
    ids.cover_until(START_MS)

    assert unix_ms_of(ids.next()) == START_MS


@given(gene=genes, power=st.integers(0, GENE_BITS), clock_ms=st.integers(EPOCH_MS, MAX_TIMESTAMP_MS - 1))
def test_order_number_routes_like_its_gene_when_divided_by_a_power_of_two(gene, power, clock_ms):
    ids = generator(ORDER_NUMBER, ScriptedClock([clock_ms]))

    order_number = ids.next(gene)

    assert order_number % 2**GENE_BITS == gene
    assert order_number % 2**power == gene % 2**power


@pytest.mark.parametrize(("layout", "gene"), [(ORDER_NUMBER, -1), (ORDER_NUMBER, 256), (ENTITY_ID, 1)])
def test_next_raises_value_error_when_the_gene_is_out_of_range(layout, gene):
    ids = generator(layout, ScriptedClock([START_MS]))

    with pytest.raises(ValueError, match="gene"):
        ids.next(gene)


@given(parts=st.lists(st.tuples(layouts, st.integers(EPOCH_MS, MAX_TIMESTAMP_MS), st.integers(0, 255)), min_size=2))
def test_ids_of_both_layouts_sort_by_time_first(parts):
    ids = [layout.pack(unix_ms, worker, 0) for layout, unix_ms, worker in parts]

    times = [(unix_ms_of(id_), worker_id_of(id_)) for id_ in sorted(ids)]

    assert times == sorted(times)


def test_id_settings_are_refused_when_the_safety_margin_leaves_no_time_to_renew():
    with pytest.raises(ValidationError, match="two thirds"):
        IdSettings(lease_ttl_ms=900, lease_safety_margin_ms=600)

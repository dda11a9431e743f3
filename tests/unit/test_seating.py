"""The seat-matching rule (aggregates/seating.py), checked against every run of every row."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aggregates.seating import choose_adjacent

# Rows of up to 40 columns, sparse or dense: a free column is drawn per position.
rows = st.dictionaries(
    st.integers(1, 60),
    st.lists(st.booleans(), min_size=1, max_size=40).map(lambda free: [c for c, f in enumerate(free, 1) if f]),
    max_size=8,
)
counts = st.integers(1, 8)
centres = st.integers(2, 80)


def runs_of(columns: list[int], count: int) -> list[int]:
    """Every start column of ``count`` consecutive free columns."""
    free = set(columns)
    return [c for c in columns if all(c + i in free for i in range(count))]


def distance(start: int, count: int, centre_twice: int) -> int:
    return abs(2 * start + count - 1 - centre_twice)


@given(rows, counts, centres)
def test_the_seats_are_adjacent_free_seats_of_one_row_when_any_row_has_a_run(available, count, centre_twice):
    chosen = choose_adjacent(available, count, centre_twice)

    if chosen is None:
        assert all(not runs_of(columns, count) for columns in available.values())
        return
    row, first = chosen[0]
    assert chosen == [(row, first + i) for i in range(count)]
    assert all(column in available[row] for _, column in chosen)


@given(rows, counts, centres)
def test_no_row_nearer_the_stage_has_a_run_when_seats_are_chosen(available, count, centre_twice):
    chosen = choose_adjacent(available, count, centre_twice)

    if chosen is not None:
        assert all(not runs_of(columns, count) for r, columns in available.items() if r < chosen[0][0])


@given(rows, counts, centres)
def test_no_run_of_the_row_is_nearer_the_centre_line_or_as_near_and_lower(available, count, centre_twice):
    chosen = choose_adjacent(available, count, centre_twice)

    if chosen is not None:
        row, first = chosen[0]
        best = min(runs_of(available[row], count), key=lambda c: (distance(c, count, centre_twice), c))
        assert first == best


def test_the_middle_of_a_row_is_preferred_to_its_ends_when_the_row_is_free():
    assert choose_adjacent({3: list(range(1, 11))}, 2, 1 + 10) == [(3, 5), (3, 6)]


def test_a_tie_goes_to_the_lower_columns_when_two_runs_are_equally_near():
    # Centre line at 5.5; runs 2-3 and 8-9 have middles 2.5 and 8.5, both 3 away.
    assert choose_adjacent({1: [2, 3, 8, 9]}, 2, 11) == [(1, 2), (1, 3)]


def test_a_group_is_never_split_when_only_scattered_seats_are_left():
    assert choose_adjacent({1: [1, 3, 5], 2: [2, 4, 6]}, 2, 7) is None

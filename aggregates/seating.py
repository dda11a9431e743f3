"""Which seats an automatic order gets: the seat-matching rule.

A group of ``count`` tickets gets ``count`` adjacent seats — consecutive columns of one row —
and never a split group:

1. nearest the stage first: the lowest row number that has such a run of free seats;
2. within that row, the run whose middle is nearest the category's centre line, the middle of
   the lowest and highest columns of its layout (not of the row: rows of a stand may be
   shifted or shortened, and the view is best facing the stage's middle);
3. of two runs equally near, the one with the lower columns;
4. no row with such a run: no seats (the request is refused with ``NO_ADJACENT_SEATS``).

Distances are doubled to stay whole numbers: a run starting at column ``c`` has its middle at
``c + (count - 1) / 2``, so twice its distance to the centre line is
``|2c + count - 1 - centre_twice|`` where ``centre_twice`` is the lowest plus the highest column.

``lua/order_reserve.lua`` applies this rule to the Redis inventory, atomically with the
reservation; ``tests/integration/test_order_reserve.py`` holds the two equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


def choose_adjacent(
    available: Mapping[int, Sequence[int]], count: int, centre_twice: int
) -> list[tuple[int, int]] | None:
    """The (row, column) of the seats the rule gives a group of ``count``, in column order, or
    None when no row has ``count`` adjacent free seats. ``available`` maps each row to its free
    columns in ascending order."""
    for row in sorted(available):
        start = best_start(available[row], count, centre_twice)
        if start is not None:
            return [(row, start + i) for i in range(count)]
    return None


def best_start(columns: Sequence[int], count: int, centre_twice: int) -> int | None:
    """The first column of the run of ``count`` adjacent free seats in one row whose middle is
    nearest the centre line (the lower one of two equally near); None when the row has none."""
    ideal = (centre_twice - count + 1) // 2
    best: tuple[int, int] | None = None
    for first, last in free_runs(columns):
        if last - first + 1 < count:
            continue
        # The distance is V-shaped in the start column, lowest at the ideal start (or equally
        # low there and at the next, when the ideal middle falls between two columns, and the
        # lower wins): a run's best start is the ideal one moved into the run.
        start = min(max(ideal, first), last - count + 1)
        candidate = (abs(2 * start + count - 1 - centre_twice), start)
        if best is None or candidate < best:
            best = candidate
    return best[1] if best is not None else None


def free_runs(columns: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The maximal runs of consecutive columns, as (first, last), left to right."""
    first: int | None = None
    previous: int | None = None
    for column in columns:
        if previous is None or column != previous + 1:
            if first is not None and previous is not None:
                yield first, previous
            first = column
        previous = column
    if first is not None and previous is not None:
        yield first, previous

"""The rule for advancing a projector's applied offsets over a batch (projections/batch.py)."""

from __future__ import annotations

from projections.batch import Delivered, Gap, Span, advance, spans

TP = ("damai.program", 0)


def test_a_batch_is_spanned_per_partition_from_its_lowest_to_its_highest_offset():
    batch = [Delivered("t", 0, 7), Delivered("t", 1, 3), Delivered("t", 0, 5), Delivered("t", 0, 9)]

    assert spans(batch) == {("t", 0): Span(5, 9), ("t", 1): Span(3, 3)}


def test_the_offset_advances_to_the_end_of_a_batch_that_follows_the_last_applied():
    assert advance({TP: 4}, {TP: Span(5, 9)}) == ({TP: 9}, [])


def test_a_replayed_batch_never_moves_the_offset_back():
    assert advance({TP: 12}, {TP: Span(5, 9)}) == ({TP: 12}, [])


def test_a_batch_beginning_past_the_offset_after_the_last_applied_is_a_gap():
    assert advance({TP: 4}, {TP: Span(7, 9)}) == ({TP: 9}, [Gap(*TP, last_applied=4, next_seen=7)])


def test_a_partition_nothing_was_applied_from_has_no_gap_when_read_from_its_beginning():
    assert advance({}, {TP: Span(0, 3)}) == ({TP: 3}, [])

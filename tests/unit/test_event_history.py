"""``damai events history`` finds an aggregate's family from the kind in its id
(``queries/event_history.py:AGGREGATE_FAMILIES``): held equal here to every registered event's key
and topic family, so a new kind of aggregate cannot be left out of the table unnoticed."""

from __future__ import annotations

import pytest

import events.order
import events.payment
import events.program
import events.reference
import events.user  # noqa: F401  (every module registers its events)
from events.registry import registered_types
from queries.event_history import UnknownAggregate, family_of


@pytest.mark.parametrize("event_type", sorted(registered_types()))
def test_each_event_s_aggregate_id_leads_to_its_topic_family(event_type: str):
    cls = registered_types()[event_type]
    fields: dict[str, object] = dict.fromkeys(cls.model_fields, 12)  # only the key's fields matter
    unchecked = cls.model_construct(None, **fields)

    assert family_of(unchecked.aggregate_key()) == cls.topic_family


def test_a_program_s_requests_are_not_taken_for_an_order():
    assert (family_of("order-requests-5"), family_of("order-5")) == ("order-requests", "order")


@pytest.mark.parametrize("aggregate_id", ["ticket-5", "order", "order-", "5"])
def test_an_id_of_no_known_kind_is_refused(aggregate_id: str):
    with pytest.raises(UnknownAggregate):
        family_of(aggregate_id)

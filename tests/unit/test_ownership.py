"""One account per mobile and per email: the ownership aggregates' rules (ADR 0007)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aggregates.errors import Conflict
from aggregates.ownership import EmailOwnership, MobileOwnership, Ownership
from events.envelope import EventEnvelope

BLIND = "ab" * 32
DEADLINE = timedelta(seconds=30)
A, B = 1001, 1002


def envelopes(ownership: Ownership) -> list[EventEnvelope]:
    return [
        EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at) for d in ownership.outbox()
    ]


def held_by_a(cls: type[Ownership] = MobileOwnership) -> Ownership:
    ownership = cls.first_claim(BLIND, A)
    ownership.collect_events()
    return ownership


def test_a_first_claim_is_keyed_by_the_blind_index_never_the_value():
    ownership = MobileOwnership.first_claim(BLIND, A)

    [decided] = envelopes(ownership)
    assert decided.aggregate_id == f"mobile-{BLIND}"
    assert decided.type == "MobileClaimed"
    assert decided.payload == {"mobileBlind": BLIND, "userId": A, "voidedUserId": None}


@pytest.mark.parametrize(("cls", "code"), [(MobileOwnership, "MOBILE_TAKEN"), (EmailOwnership, "EMAIL_TAKEN")])
def test_a_claim_is_refused_when_another_user_holds_it(cls, code):
    ownership = held_by_a(cls)

    with pytest.raises(Conflict) as refused:
        ownership.claim(B, now=ownership.modified_on + 2 * DEADLINE, holder_exists=True, void_after=DEADLINE)

    assert refused.value.code == code
    assert ownership.holder == A


def test_a_claim_by_its_holder_decides_nothing():
    ownership = held_by_a()

    ownership.claim(A, now=ownership.modified_on, holder_exists=True, void_after=DEADLINE)

    assert ownership.outbox() == []


def test_a_claim_is_refused_when_its_holder_is_missing_but_the_claim_is_young():
    """The holder's UserRegistered may still be on its way to the log."""
    ownership = held_by_a()

    with pytest.raises(Conflict):
        ownership.claim(B, now=ownership.modified_on + DEADLINE / 2, holder_exists=False, void_after=DEADLINE)


def test_a_claim_wins_when_the_holder_never_registered_and_the_deadline_passed():
    ownership = held_by_a()

    ownership.claim(B, now=ownership.modified_on + DEADLINE, holder_exists=False, void_after=DEADLINE)

    [decided] = envelopes(ownership)
    assert ownership.holder == B
    assert decided.payload["voidedUserId"] == A


def test_a_released_value_can_be_claimed_by_another_user():
    ownership = held_by_a(EmailOwnership)

    ownership.release(A)
    ownership.claim(B, now=ownership.modified_on, holder_exists=True, void_after=DEADLINE)

    assert [e.type for e in envelopes(ownership)] == ["EmailReleased", "EmailClaimed"]
    assert ownership.holder == B


def test_a_release_by_anyone_but_the_holder_decides_nothing():
    ownership = held_by_a()

    ownership.release(B)

    assert ownership.outbox() == []
    assert ownership.holder == A


def test_the_log_and_the_snapshot_rebuild_the_same_ownership():
    ownership = MobileOwnership.first_claim(BLIND, A)
    ownership.release(A)
    ownership.claim(B, now=ownership.modified_on, holder_exists=True, void_after=DEADLINE)
    snapshot = ownership.snapshot()
    log = envelopes(ownership)

    assert MobileOwnership.replay(log) == ownership
    assert MobileOwnership.from_snapshot(snapshot) == ownership
    assert [e.aggregate_version for e in log] == [1, 2, 3]

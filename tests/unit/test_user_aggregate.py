"""The User aggregate's rules, and its two other forms: the log (envelopes) and the snapshot.

Personal values are sealed with the real crypto of ``infra.personal_data`` under a random key, so
the events' JSON shown here is the shape the log gets.
"""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates.errors import DomainError
from aggregates.user import SealedValue, User
from events.envelope import EventEnvelope
from events.user import Gender, IdType
from infra.personal_data import BlindIndex, DataKey, MasterKeyring, Secret, StoredDataKeys, UserDataKeys

USER_ID = 4_200_000_000_001
MOBILE, OTHER_MOBILE = "13812345678", "13987654321"
EMAIL = "zhang.san@example.com"
NAME = "张三丰"
ID_NUMBERS = ("11010519491231002X", "110105194912310037", "E12345678")
PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
BUYER_LIMIT = 3

keyring = MasterKeyring({"m1": os.urandom(32)}, "m1")
keys: UserDataKeys = keyring.open(StoredDataKeys(USER_ID, (keyring.wrap(USER_ID, DataKey.generate()),)))
blind = BlindIndex(os.urandom(32))


def mobile(value: str = MOBILE) -> SealedValue:
    return SealedValue(cipher=keys.encrypt("mobile", Secret(value)), blind=blind.mobile(value).hex())


def id_number(number: str, id_type: IdType = IdType.ID_CARD) -> SealedValue:
    return SealedValue(cipher=keys.encrypt("id-number", Secret(number)), blind=blind.id_number(id_type, number).hex())


def name() -> str:
    return keys.encrypt("name", Secret(NAME))


def a_user() -> User:
    email = SealedValue(cipher=keys.encrypt("email", Secret(EMAIL)), blind=blind.email(EMAIL).hex())
    return User.register(USER_ID, mobile(), PASSWORD_HASH, email)


def envelopes(user: User) -> list[EventEnvelope]:
    return [EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at) for d in user.outbox()]


def code_of(command) -> str:
    with pytest.raises(DomainError) as refused:
        command()
    return refused.value.code


def test_a_registered_user_is_keyed_by_its_id_and_holds_no_clear_value():
    user = a_user()

    [registered] = envelopes(user)
    assert registered.aggregate_id == f"user-{USER_ID}"
    assert registered.type == "UserRegistered"
    assert keys.decrypt("mobile", registered.payload["mobileCipher"]) == Secret(MOBILE)
    assert MOBILE not in user.snapshot().decode() and EMAIL not in user.snapshot().decode()


def test_a_profile_change_records_only_what_differs():
    user = a_user()
    user.change_profile(gender=Gender.FEMALE)
    user.collect_events()

    user.change_profile(gender=Gender.FEMALE, mobile=mobile(OTHER_MOBILE))

    [changed] = envelopes(user)
    assert changed.payload["gender"] is None
    assert changed.payload["mobileBlind"] == blind.mobile(OTHER_MOBILE).hex()
    assert changed.payload["nameCipher"] is None
    assert user.mobile_blind == blind.mobile(OTHER_MOBILE).hex()


def test_a_profile_change_with_nothing_new_decides_nothing():
    user = a_user()
    user.collect_events()

    user.change_profile(mobile=mobile())

    assert user.outbox() == []


def test_a_password_change_keeps_the_new_hash():
    user = a_user()

    user.change_password(PASSWORD_HASH.replace("c2Fsd", "b3RoZ"))

    assert user.password_hash.startswith("$argon2id$") and user.password_hash != PASSWORD_HASH


def test_the_real_name_is_verified_once():
    user = a_user()
    user.verify_real_name(name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]))

    assert code_of(lambda: user.verify_real_name(name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]))) == (
        "REAL_NAME_ALREADY_VERIFIED"
    )


def test_a_ticket_buyer_is_refused_when_the_document_is_already_one():
    user = a_user()
    user.add_ticket_buyer(1, name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]), limit=BUYER_LIMIT)

    assert (
        code_of(lambda: user.add_ticket_buyer(2, name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]), limit=BUYER_LIMIT))
        == "TICKET_BUYER_EXISTS"
    )


def test_a_ticket_buyer_is_refused_past_the_limit():
    user = a_user()
    for i, number in enumerate(ID_NUMBERS[:2]):
        user.add_ticket_buyer(i + 1, name(), IdType.ID_CARD, id_number(number), limit=2)

    assert (
        code_of(
            lambda: user.add_ticket_buyer(
                3, name(), IdType.PASSPORT, id_number(ID_NUMBERS[2], IdType.PASSPORT), limit=2
            )
        )
        == "TICKET_BUYERS_LIMIT"
    )


def test_a_removed_ticket_buyer_frees_its_document():
    user = a_user()
    user.add_ticket_buyer(1, name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]), limit=BUYER_LIMIT)

    user.remove_ticket_buyer(1)
    user.add_ticket_buyer(2, name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]), limit=BUYER_LIMIT)

    assert list(user.ticket_buyers) == [2]
    assert envelopes(user)[2].payload["idNumberBlind"] == blind.id_number(IdType.ID_CARD, ID_NUMBERS[0]).hex()


def test_removing_an_unknown_ticket_buyer_is_refused():
    assert code_of(lambda: a_user().remove_ticket_buyer(9)) == "TICKET_BUYER_NOT_FOUND"


@pytest.mark.parametrize(
    "command",
    [
        lambda u: u.change_profile(gender=Gender.MALE),
        lambda u: u.change_password(PASSWORD_HASH),
        lambda u: u.verify_real_name(name(), IdType.ID_CARD, id_number(ID_NUMBERS[0])),
        lambda u: u.add_ticket_buyer(1, name(), IdType.ID_CARD, id_number(ID_NUMBERS[0]), limit=BUYER_LIMIT),
        lambda u: u.remove_ticket_buyer(1),
        lambda u: u.delete(),
    ],
)
def test_every_command_is_refused_once_the_user_is_deleted(command):
    user = a_user()
    user.delete()

    assert code_of(lambda: command(user)) == "USER_DELETED"


def test_an_event_refuses_a_clear_value_where_a_token_belongs():
    user = User.register(USER_ID, SealedValue(cipher=MOBILE, blind=blind.mobile(MOBILE).hex()), PASSWORD_HASH)

    with pytest.raises(ValueError, match=r"mobile_?[cC]ipher"):
        user.outbox()


commands = st.lists(
    st.one_of(
        st.tuples(st.just("profile"), st.sampled_from([None, *Gender]), st.sampled_from([None, MOBILE, OTHER_MOBILE])),
        st.just(("password",)),
        st.tuples(st.just("verify"), st.sampled_from(ID_NUMBERS[:2])),
        st.tuples(st.just("add_buyer"), st.integers(1, 5), st.sampled_from(ID_NUMBERS[:2])),
        st.tuples(st.just("remove_buyer"), st.integers(1, 5)),
        st.just(("delete",)),
    ),
    max_size=12,
)


def apply(user: User, command: tuple[object, ...]) -> None:
    """One user command; refused ones decide nothing, as in the handlers."""
    try:
        match command:
            case ("profile", gender, value):
                user.change_profile(
                    name_cipher=name(),
                    gender=gender if isinstance(gender, Gender) else None,
                    mobile=mobile(value) if isinstance(value, str) else None,
                )
            case ("password",):
                user.change_password(PASSWORD_HASH)
            case ("verify", str(number)):
                user.verify_real_name(name(), IdType.ID_CARD, id_number(number))
            case ("add_buyer", int(buyer), str(number)):
                if buyer not in user.ticket_buyers:
                    user.add_ticket_buyer(buyer, name(), IdType.ID_CARD, id_number(number), limit=BUYER_LIMIT)
            case ("remove_buyer", int(buyer)):
                user.remove_ticket_buyer(buyer)
            case ("delete",):
                user.delete()
    except DomainError:
        pass


@settings(max_examples=60, deadline=None)
@given(commands=commands)
def test_the_log_and_the_snapshot_rebuild_the_same_user_and_show_no_clear_value(commands):
    user = a_user()
    log = envelopes(user)
    for command in commands:
        apply(user, command)
        log += envelopes(user)

    assert User.replay(log) == user
    assert User.from_snapshot(user.snapshot()) == user
    assert [e.aggregate_version for e in log] == list(range(1, user.version + 1))
    written = orjson.dumps([e.model_dump(mode="json") for e in log]).decode() + user.snapshot().decode()
    for clear in (MOBILE, OTHER_MOBILE, EMAIL, NAME, *ID_NUMBERS):
        assert clear not in written

"""The user projector against real Postgres shards and Redis, called in-process.

Personal values are sealed with the real crypto of ``infra.personal_data`` (the settings' master
key, a fresh data key per user) and blind indexes come from the settings' key, so the events are
the ones the log gets.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.user import (
    EmailClaimed,
    Gender,
    IdType,
    MobileClaimed,
    MobileReleased,
    PasswordChanged,
    ProfileChanged,
    RealNameVerified,
    TicketBuyerAdded,
    TicketBuyerRemoved,
    UserDeleted,
    UserRegistered,
)
from infra.personal_data import BlindIndex, DataKey, MasterKeyring, Secret, StoredDataKeys, UserDataKeys
from infra.personal_data.postgres_store import PostgresDataKeyStore
from infra.personal_data.vault import PersonalDataVault
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts
from infra.redis_keys import user_state, user_ticket_buyers
from infra.settings import Settings
from projections.batch import Delivered, Positioned
from projections.user_projector import UserProjector
from queries.users import UserReads
from queries.views.users import (
    UserStatus,
    load_user,
    ticket_buyers_of,
    user_id_by_email,
    user_id_by_mobile,
)
from tests.integration.conftest import Queries

PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
NEW_PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2huZXdoYXNo"
_user_ids = itertools.count(7_300_000_000_000 + uuid.uuid4().int % 1_000_000_000)


class Person:
    """One user's data key and the settings' blind index: what the command side seals with."""

    def __init__(self, settings: Settings):
        self.user_id = next(_user_ids)
        keyring = MasterKeyring.from_settings(settings.security)
        wrapped = keyring.wrap(self.user_id, DataKey.generate())
        self.keys: UserDataKeys = keyring.open(StoredDataKeys(self.user_id, (wrapped,)))
        self.blind = BlindIndex.from_settings(settings.security)

    def seal(self, field_name: str, value: str) -> str:
        return self.keys.encrypt(field_name, Secret(value))

    def mobile_blind(self, mobile: str) -> str:
        return self.blind.mobile(mobile).hex()

    def email_blind(self, email: str) -> str:
        return self.blind.email(email).hex()

    def registration(self, mobile: str, email: str | None = None) -> list[DomainEvent]:
        """The claims, then the account (ADR 0007)."""
        claims: list[DomainEvent] = [MobileClaimed(mobile_blind=self.mobile_blind(mobile), user_id=self.user_id)]
        if email is not None:
            claims.append(EmailClaimed(email_blind=self.email_blind(email), user_id=self.user_id))
        registered = UserRegistered(
            user_id=self.user_id,
            mobile_cipher=self.seal("mobile", mobile),
            mobile_blind=self.mobile_blind(mobile),
            email_cipher=self.seal("email", email) if email else None,
            email_blind=self.email_blind(email) if email else None,
            password_hash=PASSWORD_HASH,
        )
        return [*claims, registered]

    def buyer(self, buyer_id: int, name: str, number: str) -> TicketBuyerAdded:
        return TicketBuyerAdded(
            user_id=self.user_id,
            ticket_buyer_id=buyer_id,
            name_cipher=self.seal("name", name),
            id_type=IdType.ID_CARD,
            id_number_cipher=self.seal("id-number", number),
            id_number_blind=self.blind.id_number(IdType.ID_CARD, number).hex(),
        )


class Log:
    """Hands out offsets on one partition and each aggregate's next version, as the log would."""

    def __init__(self, topic: str):
        self.topic = topic
        self._offsets = itertools.count()
        self._versions: dict[str, int] = defaultdict(int)

    def batch(self, *events: DomainEvent) -> list[Positioned[EventEnvelope]]:
        records = []
        for event in events:
            self._versions[event.aggregate_key()] += 1
            envelope = EventEnvelope.wrap(event, aggregate_version=self._versions[event.aggregate_key()])
            records.append(Positioned(Delivered(self.topic, 0, next(self._offsets)), envelope))
        return records

    def again(self, records: list[Positioned[EventEnvelope]]) -> list[Positioned[EventEnvelope]]:
        """The same envelopes at new offsets: a replay, not a redelivery."""
        return [Positioned(Delivered(self.topic, 0, next(self._offsets)), r.item) for r in records]


@pytest_asyncio.fixture
async def projected(
    isolated: Settings, db: tuple[ShardedDatabase, Queries], redis: Redis
) -> AsyncIterator[tuple[UserProjector, ShardedDatabase, Log]]:
    sharded, _ = db
    name = f"{isolated.worker.projector_group}.user"
    projector = UserProjector(name, sharded.pools, sharded.layout, redis, LuaScripts(redis), isolated)
    yield projector, sharded, Log(isolated.kafka.topic("user"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _hash(redis: Redis, key: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}


async def _state(redis: Redis, settings: Settings, user_id: int) -> dict[str, str]:
    return await _hash(redis, user_state(settings.users.key_prefix, user_id))


async def _buyers_in_redis(redis: Redis, settings: Settings, user_id: int) -> dict[str, str]:
    return await _hash(redis, user_ticket_buyers(settings.users.key_prefix, user_id))


async def test_registration_lands_in_the_user_and_lookup_tables_of_its_shards(projected, isolated, redis, db):
    projector, sharded, log = projected
    _, queries = db
    person = Person(isolated)

    await projector.apply(log.batch(*person.registration("13800000001", "li.si@example.com")))

    user = await load_user(sharded, person.user_id)
    assert user is not None and user.status == UserStatus.ACTIVE and user.aggregate_version == 1
    assert person.keys.decrypt("mobile", user.mobile_cipher) == Secret("13800000001")
    assert user.mobile_blind == person.blind.mobile("13800000001")
    assert user.email_blind == person.blind.email("li.si@example.com")
    assert (user.name_cipher, user.gender, user.real_name_verified) == (None, None, False)
    queries.clear()
    assert await user_id_by_mobile(sharded, person.blind.mobile("13800000001")) == person.user_id
    assert await user_id_by_email(sharded, person.blind.email("li.si@example.com")) == person.user_id
    mobile_shard = sharded.layout.user_mobile(person.blind.mobile("13800000001"))
    email_shard = sharded.layout.user_email(person.blind.email("li.si@example.com"))
    assert [(database, query.split("FROM ")[1].split()[0]) for database, query in queries] == [
        (mobile_shard.database, mobile_shard.table),
        (email_shard.database, email_shard.table),
    ]
    assert await _state(redis, isolated, person.user_id) == {"version": "1", "status": "active"}


async def test_user_row_is_only_in_the_table_its_id_routes_to_when_projected(projected, isolated):
    projector, sharded, log = projected
    person = Person(isolated)

    await projector.apply(log.batch(*person.registration("13800000002")))

    holding = [
        shard
        for shard in sharded.layout.physical_tables("user")
        if await sharded.fetchval(shard, "SELECT count(*) FROM {table} WHERE id = $1", person.user_id)
    ]
    assert holding == [sharded.layout.user(person.user_id)]


async def test_changing_the_mobile_moves_the_lookup_when_the_old_one_is_released(projected, isolated, redis):
    projector, sharded, log = projected
    person = Person(isolated)
    await projector.apply(log.batch(*person.registration("13800000003")))
    old, new = person.mobile_blind("13800000003"), person.mobile_blind("13900000003")

    await projector.apply(
        log.batch(
            MobileClaimed(mobile_blind=new, user_id=person.user_id),
            ProfileChanged(
                user_id=person.user_id, mobile_cipher=person.seal("mobile", "13900000003"), mobile_blind=new
            ),
            MobileReleased(mobile_blind=old, user_id=person.user_id),
        )
    )

    assert await user_id_by_mobile(sharded, bytes.fromhex(old)) is None
    assert await user_id_by_mobile(sharded, bytes.fromhex(new)) == person.user_id
    user = await load_user(sharded, person.user_id)
    assert user is not None and user.mobile_blind == bytes.fromhex(new) and user.aggregate_version == 2
    assert (await _state(redis, isolated, person.user_id))["version"] == "2"


async def test_a_replayed_older_claim_leaves_a_released_mobile_released(projected, isolated):
    projector, sharded, log = projected
    person = Person(isolated)
    registration = log.batch(*person.registration("13800000004"))
    await projector.apply(registration)
    await projector.apply(
        log.batch(MobileReleased(mobile_blind=person.mobile_blind("13800000004"), user_id=person.user_id))
    )

    await projector.apply(log.again(registration))

    assert await user_id_by_mobile(sharded, person.blind.mobile("13800000004")) is None


async def test_profile_password_and_real_name_reach_the_user_row(projected, isolated):
    projector, sharded, log = projected
    person = Person(isolated)
    await projector.apply(log.batch(*person.registration("13800000005")))
    id_number = "11010519491231002X"

    await projector.apply(
        log.batch(
            ProfileChanged(user_id=person.user_id, name_cipher=person.seal("name", "李四"), gender=Gender.FEMALE),
            PasswordChanged(user_id=person.user_id, password_hash=NEW_PASSWORD_HASH),
            RealNameVerified(
                user_id=person.user_id,
                real_name_cipher=person.seal("real-name", "李四"),
                id_type=IdType.ID_CARD,
                id_number_cipher=person.seal("id-number", id_number),
                id_number_blind=person.blind.id_number(IdType.ID_CARD, id_number).hex(),
            ),
        )
    )

    user = await load_user(sharded, person.user_id)
    assert user is not None and user.aggregate_version == 4
    assert user.name_cipher is not None and person.keys.decrypt("name", user.name_cipher) == Secret("李四")
    assert (user.gender, user.password_hash, user.real_name_verified, user.id_type) == (
        "FEMALE",
        NEW_PASSWORD_HASH,
        True,
        "ID_CARD",
    )
    assert user.id_number_cipher is not None
    assert person.keys.decrypt("id-number", user.id_number_cipher) == Secret(id_number)


async def test_ticket_buyers_added_and_removed_reach_postgres_and_redis(projected, isolated, redis):
    projector, sharded, log = projected
    person = Person(isolated)
    await projector.apply(log.batch(*person.registration("13800000006")))
    first, second = person.buyer(901, "王五", "110105194912310037"), person.buyer(902, "赵六", "11010519491231002X")

    await projector.apply(log.batch(first, second))
    await projector.apply(
        log.batch(
            TicketBuyerRemoved(user_id=person.user_id, ticket_buyer_id=901, id_number_blind=first.id_number_blind)
        )
    )

    [kept] = await ticket_buyers_of(sharded, person.user_id)
    assert (kept.id, kept.user_id, kept.id_type) == (902, person.user_id, "ID_CARD")
    assert person.keys.decrypt("name", kept.name_cipher) == Secret("赵六")
    assert await _buyers_in_redis(redis, isolated, person.user_id) == {"902": second.id_number_blind}
    user = await load_user(sharded, person.user_id)
    assert user is not None and user.aggregate_version == 4
    assert (await _state(redis, isolated, person.user_id))["version"] == "4"


async def test_ticket_buyers_come_oldest_first_when_listed(projected, isolated):
    projector, sharded, log = projected
    person = Person(isolated)
    await projector.apply(log.batch(*person.registration("13800000007")))

    for buyer_id, number in ((905, "110105194912310037"), (903, "11010519491231002X")):
        await projector.apply(log.batch(person.buyer(buyer_id, "买票人", number)))

    assert [b.id for b in await ticket_buyers_of(sharded, person.user_id)] == [905, 903]


async def test_deleting_a_user_marks_it_deleted_and_drops_its_buyers(projected, isolated, redis):
    projector, sharded, log = projected
    person = Person(isolated)
    await projector.apply(log.batch(*person.registration("13800000008"), person.buyer(904, "王五", "E12345678")))

    await projector.apply(log.batch(UserDeleted(user_id=person.user_id)))

    user = await load_user(sharded, person.user_id)
    assert user is not None and user.status == UserStatus.DELETED and user.aggregate_version == 3
    assert await ticket_buyers_of(sharded, person.user_id) == []
    assert await _state(redis, isolated, person.user_id) == {"version": "3", "status": UserStatus.DELETED.value}
    assert not await redis.exists(user_ticket_buyers(isolated.users.key_prefix, person.user_id))
    # However the handler that appended it ended, a deleted user's data key is destroyed.
    stored = await PostgresDataKeyStore(sharded).load(person.user_id)
    assert stored is not None and stored.shredded and stored.wrapped == ()


async def test_redelivered_batch_changes_nothing_when_newer_events_were_applied(projected, isolated, redis):
    projector, sharded, log = projected
    person = Person(isolated)
    registration = log.batch(*person.registration("13800000009"), person.buyer(906, "王五", "E12345679"))
    await projector.apply(registration)
    removal = TicketBuyerRemoved(user_id=person.user_id, ticket_buyer_id=906, id_number_blind="ab" * 32)
    await projector.apply(log.batch(removal, PasswordChanged(user_id=person.user_id, password_hash=NEW_PASSWORD_HASH)))
    before = (await load_user(sharded, person.user_id), await _state(redis, isolated, person.user_id))

    await projector.apply(registration)  # a redelivery: the offsets skip it in Postgres
    await projector.apply(log.again(registration))  # a replay: the versions skip it everywhere

    assert (await load_user(sharded, person.user_id), await _state(redis, isolated, person.user_id)) == before
    assert before[1] == {"version": "4", "status": "active"}
    assert await ticket_buyers_of(sharded, person.user_id) == []
    assert await _buyers_in_redis(redis, isolated, person.user_id) == {}


async def test_a_rebuilding_projector_reaches_the_same_rows_when_it_replays_the_log(projected, isolated, redis, db):
    projector, sharded, log = projected
    person = Person(isolated)
    history = [
        log.batch(*person.registration("13800000010", "wang.wu@example.com")),
        log.batch(person.buyer(907, "王五", "E12345670")),
        log.batch(PasswordChanged(user_id=person.user_id, password_hash=NEW_PASSWORD_HASH)),
    ]
    for batch in history:
        await projector.apply(batch)
    before = await load_user(sharded, person.user_id)
    rebuilding = UserProjector(
        "a-rebuilding-projector", sharded.pools, sharded.layout, redis, LuaScripts(redis), isolated
    )

    for batch in history:
        await rebuilding.apply(batch)

    assert await load_user(sharded, person.user_id) == before
    assert (await _state(redis, isolated, person.user_id))["version"] == "3"


async def test_state_script_refuses_a_buyer_kind_without_its_buyer(redis, isolated):
    scripts = LuaScripts(redis)
    keys = [user_state(isolated.users.key_prefix, 1), user_ticket_buyers(isolated.users.key_prefix, 1)]

    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
        await scripts["user_state_apply"](keys=keys, args=[1, "buyer_added", "", ""])


async def test_a_registration_is_confirmed_only_once_its_claims_are_projected_too(projected, isolated, redis):
    """The user's events and its mobile's claim are projected apart (other keys, other partitions):
    login looks the mobile up, so registration waits for both, not for the user's version alone."""
    projector, sharded, log = projected
    person = Person(isolated)
    claim, registered = person.registration("13800000011")
    reads = UserReads(
        sharded,
        redis,
        isolated.users,
        PersonalDataVault(MasterKeyring.from_settings(isolated.security), PostgresDataKeyStore(sharded)),
    )
    blind = person.blind.mobile("13800000011")

    await projector.apply(log.batch(registered))
    user_seen = await reads.projected(person.user_id, 1, timeout_s=1.0)
    claim_before = await reads.holds("mobile", blind, person.user_id, timeout_s=0.2)
    await projector.apply(log.batch(claim))
    claim_after = await reads.holds("mobile", blind, person.user_id, timeout_s=1.0)
    someone_else = await reads.holds("mobile", blind, person.user_id + 1, timeout_s=0.1)

    assert (user_seen, claim_before, claim_after, someone_else) == (True, False, True, False)

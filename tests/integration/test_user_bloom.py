"""The registration Bloom filter in real Redis: fed by the user projector, rebuilt from real Postgres."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from redis.asyncio import Redis

from events.envelope import EventEnvelope
from events.user import EmailClaimed, EmailEvent, MobileClaimed, MobileEvent, MobileReleased
from infra.personal_data import BlindIndex, MasterKeyring
from infra.personal_data.postgres_store import PostgresDataKeyStore
from infra.personal_data.vault import PersonalDataVault
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts
from infra.redis_keys import user_bloom as user_bloom_key
from infra.settings import Settings
from projections.batch import Delivered, Positioned
from projections.user_projector import UserProjector
from queries.cache.bloom import Membership
from queries.cache.user_bloom import rebuild_user_bloom, user_bloom
from queries.users import UserReads
from queries.views.users import full_route_identifier_blinds

SMALL_FILTER_BITS = 1 << 16
CLI_TIMEOUT_S = 60
USER_ID = 7_400_000_000_001


@pytest.fixture
def small(isolated: Settings) -> Settings:
    """The test's namespace with a filter of 8 KiB instead of 17 MiB."""
    return isolated.model_copy(update={"users": isolated.users.model_copy(update={"bloom_bits": SMALL_FILTER_BITS})})


def vault(settings: Settings, sharded: ShardedDatabase) -> PersonalDataVault:
    return PersonalDataVault(MasterKeyring.from_settings(settings.security), PostgresDataKeyStore(sharded))


def _blinds(settings: Settings) -> BlindIndex:
    return BlindIndex.from_settings(settings.security)


async def _project(
    settings: Settings, sharded: ShardedDatabase, redis: Redis, *events: tuple[int, MobileEvent | EmailEvent]
) -> None:
    """One batch of (ownership version, event), from offset 0: call it once per test."""
    projector = UserProjector(
        f"{settings.worker.projector_group}.user", sharded.pools, sharded.layout, redis, LuaScripts(redis), settings
    )
    topic = settings.kafka.topic("user")
    await projector.apply(
        [
            Positioned(Delivered(topic, 0, offset), EventEnvelope.wrap(e, aggregate_version=v))
            for offset, (v, e) in enumerate(events)
        ]
    )


async def _membership(redis: Redis, settings: Settings, blind: bytes) -> Membership:
    return await user_bloom(redis, settings.users).check(blind)


async def test_claimed_mobiles_and_emails_are_present_when_projected_into_a_live_filter(db, redis, small):
    sharded, _ = db
    await rebuild_user_bloom(redis, small.users, sharded)  # an empty filter, live
    mobile, email = _blinds(small).mobile("13700000001"), _blinds(small).email("zhao.liu@example.com")

    await _project(
        small,
        sharded,
        redis,
        (1, MobileClaimed(mobile_blind=mobile.hex(), user_id=USER_ID)),
        (1, EmailClaimed(email_blind=email.hex(), user_id=USER_ID)),
    )

    assert await _membership(redis, small, mobile) is Membership.MAYBE_PRESENT
    assert await _membership(redis, small, email) is Membership.MAYBE_PRESENT
    others = {await _membership(redis, small, _blinds(small).mobile(f"136{n:08d}")) for n in range(50)}
    assert others == {Membership.ABSENT}


async def test_rebuild_restores_a_flushed_filter_from_the_lookup_tables(db, redis, small):
    sharded, _ = db
    mobile, email = _blinds(small).mobile("13700000002"), _blinds(small).email("sun.qi@example.com")
    released = _blinds(small).mobile("13700000003")
    await _project(
        small,
        sharded,
        redis,
        (1, MobileClaimed(mobile_blind=mobile.hex(), user_id=USER_ID)),
        (1, EmailClaimed(email_blind=email.hex(), user_id=USER_ID)),
        (1, MobileClaimed(mobile_blind=released.hex(), user_id=USER_ID)),
        (2, MobileReleased(mobile_blind=released.hex(), user_id=USER_ID)),
    )
    await redis.delete(user_bloom_key(small.users.key_prefix, "live"))
    flushed = await _membership(redis, small, mobile)

    added = await rebuild_user_bloom(redis, small.users, sharded)

    assert flushed is Membership.UNKNOWN
    assert added == 2  # the released mobile is not in use
    assert await _membership(redis, small, mobile) is Membership.MAYBE_PRESENT
    assert await _membership(redis, small, email) is Membership.MAYBE_PRESENT


async def test_full_route_reads_every_lookup_table_when_collecting_blinds(db, redis, small):
    sharded, queries = db
    queries.clear()

    found = [b async for table_blinds in full_route_identifier_blinds(sharded) for b in table_blinds]

    assert found == []
    tables = {s.table for f in ("user_mobile", "user_email") for s in sharded.layout.physical_tables(f)}
    assert {query.split("FROM ")[1].split()[0] for _, query in queries} == tables
    assert len(queries) == len(tables)


async def test_rebuild_command_prints_how_many_identifiers_it_added(db, redis, small):
    sharded, _ = db
    mobile = _blinds(small).mobile("13700000004")
    await _project(small, sharded, redis, (1, MobileClaimed(mobile_blind=mobile.hex(), user_id=USER_ID)))
    env = {**os.environ, **small.namespace_env(), "DAMAI_USERS__BLOOM_BITS": str(SMALL_FILTER_BITS)}

    command = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cli.main", "rebuild", "bloom", "users"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(command.communicate(), CLI_TIMEOUT_S)

    assert command.returncode == 0, err.decode()
    assert "live with 1 mobiles and emails" in out.decode()
    assert await _membership(redis, small, mobile) is Membership.MAYBE_PRESENT


async def test_new_mobiles_are_answered_by_the_filter_without_a_query_and_positives_by_the_lookup_table(
    db, redis, small
):
    sharded, queries = db
    await rebuild_user_bloom(redis, small.users, sharded)
    taken = _blinds(small).mobile("13700000009")
    await _project(small, sharded, redis, (1, MobileClaimed(mobile_blind=taken.hex(), user_id=USER_ID)))
    reads = UserReads(sharded, redis, small.users, vault(small, sharded))
    fresh = [_blinds(small).mobile(f"135{n:08d}") for n in range(1000)]
    queries.clear()

    answers = [await reads.registered("mobile", blind) for blind in fresh]

    assert answers == [False] * len(fresh)
    assert queries == []
    # A positive is checked against the lookup table (then the holder's row, which this claim lacks:
    # an account that never registered is no account).
    assert await reads.registered("mobile", taken) is False
    assert [q for _, q in queries if "mobile_blind" in q]

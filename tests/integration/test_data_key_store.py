"""The data key store on Postgres: wrapped keys routed with the user, rotation without loss, shredding."""

from __future__ import annotations

import asyncio
import base64
import os
import random

import pytest

from infra.personal_data import (
    DataKey,
    MasterKeyring,
    PersonalDataShredded,
    Secret,
    StoredDataKeys,
    UnknownKey,
)
from infra.personal_data.postgres_store import DataKeysChanged, PostgresDataKeyStore
from infra.postgres.sharded import ShardedDatabase

OLD_MASTER = {"m1": os.urandom(32)}
BOTH_MASTERS = {**OLD_MASTER, "m2": os.urandom(32)}


@pytest.fixture
def store(db) -> PostgresDataKeyStore:
    return PostgresDataKeyStore(db[0])


@pytest.fixture
def sharded(db) -> ShardedDatabase:
    database: ShardedDatabase = db[0]
    return database


@pytest.fixture
def user_id() -> int:
    return random.randrange(1, 1 << 62)


async def registered(store: PostgresDataKeyStore, keyring: MasterKeyring, user_id: int) -> DataKey:
    data_key = DataKey.generate()
    assert await store.create(user_id, keyring.wrap(user_id, data_key))
    return data_key


async def raw_row(sharded: ShardedDatabase, user_id: int) -> str:
    text: str = await sharded.fetchval(
        sharded.layout.user_data_keys(user_id), "SELECT row_to_json(k)::text FROM {table} k WHERE user_id = $1", user_id
    )
    return text


async def test_a_value_sealed_under_a_created_key_opens_after_a_load(store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    await registered(store, keyring, user_id)
    token = keyring.open(await store.load(user_id)).encrypt("mobile", Secret("13800138000"))

    reloaded = keyring.open(await store.load(user_id))

    assert reloaded.decrypt("mobile", token) == Secret("13800138000")


async def test_a_user_who_never_had_a_key_loads_as_none(store, user_id):
    assert await store.load(user_id) is None


async def test_a_second_key_for_a_user_is_refused_and_the_first_kept(store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    first = await registered(store, keyring, user_id)

    created = await store.create(user_id, keyring.wrap(user_id, DataKey.generate()))

    stored = await store.load(user_id)
    assert not created
    assert [w.key_id for w in stored.wrapped] == [first.key_id]


async def test_the_row_lives_in_the_users_database_and_slot(sharded, store, user_id):
    await registered(store, MasterKeyring(OLD_MASTER, "m1"), user_id)

    keys, user = sharded.layout.user_data_keys(user_id), sharded.layout.user(user_id)

    assert keys.database == user.database
    assert keys.table.rsplit("_", 1)[1] == user.table.rsplit("_", 1)[1]
    assert await raw_row(sharded, user_id)


async def test_the_row_never_holds_the_clear_data_key(sharded, store, user_id):
    data_key = await registered(store, MasterKeyring(OLD_MASTER, "m1"), user_id)

    row = await raw_row(sharded, user_id)

    clear_forms = [
        data_key.material.hex(),
        base64.b64encode(data_key.material).decode().rstrip("="),
        base64.urlsafe_b64encode(data_key.material).decode().rstrip("="),
    ]
    assert data_key.key_id in row
    assert not [form for form in clear_forms if form in row]


async def test_after_a_shred_every_value_of_the_user_is_unreadable(store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    await registered(store, keyring, user_id)
    token = keyring.open(await store.load(user_id)).encrypt("name", Secret("张三"))

    await store.shred(user_id)

    stored = await store.load(user_id)
    assert stored == StoredDataKeys(user_id, (), shredded=True)
    with pytest.raises(PersonalDataShredded):
        keyring.open(stored).decrypt("name", token)


async def test_a_shred_overwrites_the_wrapped_key_in_the_row(sharded, store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    await registered(store, keyring, user_id)
    wrapped_token = (await store.load(user_id)).wrapped[0].token

    await store.shred(user_id)

    row = await raw_row(sharded, user_id)
    assert wrapped_token not in row
    assert '"shredded":true' in row.replace(" ", "")


async def test_a_shredded_user_gets_no_new_key_and_no_replacement(store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    await registered(store, keyring, user_id)
    before = await store.load(user_id)
    await store.shred(user_id)

    created = await store.create(user_id, keyring.wrap(user_id, DataKey.generate()))
    with pytest.raises(PersonalDataShredded):
        await store.replace(before)

    assert not created
    assert (await store.load(user_id)).shredded


async def test_shredding_a_user_without_a_key_leaves_a_tombstone(store, user_id):
    await store.shred(user_id)
    await store.shred(user_id)

    assert await store.load(user_id) == StoredDataKeys(user_id, (), shredded=True)


async def test_a_rotation_rewraps_under_the_new_master_key_and_old_values_still_open(store, user_id):
    before = MasterKeyring(BOTH_MASTERS, "m1")
    await registered(store, before, user_id)
    token = before.open(await store.load(user_id)).encrypt("email", Secret("a@example.com"))
    after = MasterKeyring(BOTH_MASTERS, "m2")

    await store.replace(after.rewrap(await store.load(user_id)))

    stored = await store.load(user_id)
    assert [after.needs_rewrap(w) for w in stored.wrapped] == [False]
    assert after.open(stored).decrypt("email", token) == Secret("a@example.com")
    with pytest.raises(UnknownKey):
        MasterKeyring(OLD_MASTER, "m1").open(stored)


async def test_a_rewrap_from_a_stale_load_cannot_drop_a_key_added_since(store, user_id):
    before, after = MasterKeyring(BOTH_MASTERS, "m1"), MasterKeyring(BOTH_MASTERS, "m2")
    first = await registered(store, before, user_id)
    stale = await store.load(user_id)
    renewed = DataKey.generate()
    await store.replace(StoredDataKeys(user_id, (*stale.wrapped, before.wrap(user_id, renewed))))

    with pytest.raises(DataKeysChanged):
        await store.replace(after.rewrap(stale))

    stored = await store.load(user_id)
    assert [w.key_id for w in stored.wrapped] == [first.key_id, renewed.key_id]


async def test_of_concurrent_renewals_from_one_load_exactly_one_is_stored(store, user_id):
    keyring = MasterKeyring(OLD_MASTER, "m1")
    first = await registered(store, keyring, user_id)
    loaded = await store.load(user_id)
    renewals = [DataKey.generate() for _ in range(8)]

    outcomes = await asyncio.gather(
        *(store.replace(StoredDataKeys(user_id, (*loaded.wrapped, keyring.wrap(user_id, k)))) for k in renewals),
        return_exceptions=True,
    )

    stored = await store.load(user_id)
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, DataKeysChanged) for o in outcomes if o is not None)
    assert stored.wrapped[0].key_id == first.key_id
    assert stored.wrapped[1].key_id in {k.key_id for k in renewals}

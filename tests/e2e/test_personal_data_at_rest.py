"""Personal data at rest, on the real stack: after registrations, profiles, real-name verifications,
ticket buyers of every ID type, failed logins and refused requests, no clear value (mobile in every
form typed, email, name, real name, ID number, password) is in any Postgres row, Kafka message,
Redis key or value, process log or response body of the namespace; and deleting an account shreds
its personal data in the immutable log while another user's stays readable (docs/personal-data.md)."""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from aggregates.identity_documents import check_character, mask_email, mask_id_number, mask_mobile, mask_name
from api.app import ACCESS_LOG_FLUSH_S
from cli.provision import consumer_groups
from commands.user import (
    EMAIL_FIELD,
    ID_NUMBER_FIELD,
    MOBILE_FIELD,
    NAME_FIELD,
    REAL_NAME_FIELD,
    ticket_buyer_field,
)
from events.serialization import decode, payload_of
from events.user import IdType, TicketBuyerAdded, UserEvent
from infra.personal_data import MasterKeyring, PersonalDataShredded, UnreadableToken, value_binding
from infra.personal_data.postgres_store import PostgresDataKeyStore
from infra.personal_data.tokens import open_sealed
from infra.personal_data.vault import PersonalDataVault
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from infra.settings import Settings
from tests.e2e.conftest import System
from tests.integration.test_kafka_adapter import read_all

PASSWORD = f"Lantern-{random.randrange(10**6):06d}-pw"
WRONG_PASSWORDS = [f"Wrong-{random.randrange(10**6):06d}-{n}" for n in range(3)]
CIPHER_FIELDS = {
    "mobile_cipher": MOBILE_FIELD,
    "email_cipher": EMAIL_FIELD,
    "name_cipher": NAME_FIELD,
    "real_name_cipher": REAL_NAME_FIELD,
    "id_number_cipher": ID_NUMBER_FIELD,
}
"""Every ``*_cipher`` field of the user events, and the field name its value is bound to."""
_GIVEN_NAME_CHARACTERS = "霁璇翎澈琰珂瑾曦岚煜蔚湛砚遥"
_used_names: set[str] = set()


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "100000",
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": "1000",
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": "1000",
    }


# -- distinctive clear values -----------------------------------------------------------------


def new_mobile() -> str:
    return f"1{random.choice('3456789')}{random.randrange(10**9):09d}"


def new_email() -> str:
    return f"Quix.{random.randrange(10**9)}@Example-Mail.com"


def new_name(surname: str) -> str:
    while (name := surname + "".join(random.sample(_GIVEN_NAME_CHARACTERS, 2))) in _used_names:
        pass
    _used_names.add(name)
    return name


def latin_name() -> str:
    return f"Ottoline {''.join(random.choices(string.ascii_uppercase, k=6)).capitalize()}"


def citizen_number(region: str) -> str:
    """A valid GB 11643 number (ID card, or a residence permit with a 81/82/83 region)."""
    born = date(1950, 1, 1) + timedelta(days=random.randrange(20_000))
    first = f"{region}{born:%Y%m%d}{random.randrange(1000):03d}"
    return first + check_character(first)


def permanent_residence_number() -> str:
    first = f"9{random.randrange(10**16):016d}"
    return first + check_character(first)


def with_wrong_check_character(number: str) -> str:
    return number[:17] + next(c for c in "0123456789X" if c != number[17])


def needle_forms(value: str) -> set[bytes]:
    """How a value would look in a row, a message or a log line: UTF-8, or JSON with ASCII escapes;
    compared in lower case, so an email or ID number in any case counts."""
    lower = value.lower()
    return {lower.encode(), json.dumps(lower)[1:-1].encode()}


def leaks(haystacks: Iterable[tuple[str, bytes]], clear_values: Iterable[str]) -> list[tuple[str, str]]:
    """(where, clear value) for every clear value found in a haystack."""
    needles = [(value, form) for value in clear_values for form in needle_forms(value)]
    found = set()
    for where, text in haystacks:
        lower = text.lower()
        found |= {(where, value) for value, form in needles if form in lower}
    return sorted(found)


# -- the story the checks read ----------------------------------------------------------------


@dataclass
class Person:
    mobile: str
    typed_mobile: str
    """The mobile as it was registered (with +86, 0086, spaces)."""
    email: str | None
    user_id: int = 0
    auth: dict[str, str] = field(default_factory=dict)
    sealed: dict[str, str] = field(default_factory=dict)
    """Field name (as values are bound) → the clear value the log must hold sealed under it."""


@dataclass
class Story:
    """What the module did through the API, for the checks to read: ``deleted`` closed their account,
    ``kept`` and ``other`` did not."""

    deleted: Person
    kept: Person
    other: Person
    clear_values: set[str]
    responses: list[httpx.Response]
    deleted_token_after: httpx.Response
    mobile_reregistered: httpx.Response


class Client:
    """The API as the test calls it, keeping every response."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.responses: list[httpx.Response] = []

    async def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, auth: dict[str, str] | None = None
    ) -> httpx.Response:
        response = await self.http.request(method, path, json=body, headers=auth or {})
        self.responses.append(response)
        return response

    async def register(self, mobile: str, email: str | None = None, password: str = PASSWORD) -> httpx.Response:
        body = {"mobile": mobile, "password": password, "confirmPassword": password}
        if email is not None:
            body["email"] = email
        return await self.send("POST", "/api/v1/users", body)

    async def log_in(self, password: str, **identifier: str) -> httpx.Response:
        return await self.send("POST", "/api/v1/sessions", {**identifier, "password": password})


async def open_account(client: Client, person: Person, clear: set[str]) -> None:
    registered = await client.register(person.typed_mobile, person.email)
    assert registered.status_code == 201, registered.text
    person.user_id = int(registered.json()["userId"])
    session = await client.log_in(PASSWORD, mobile=person.mobile)
    assert session.status_code == 201, session.text
    person.auth = {"Authorization": f"Bearer {session.json()['accessToken']}"}
    person.sealed[MOBILE_FIELD] = person.mobile
    clear |= {person.mobile, person.typed_mobile}
    if person.email is not None:
        person.sealed[EMAIL_FIELD] = person.email.lower()
        clear.add(person.email)


async def name_and_verify(client: Client, person: Person, surname: str, clear: set[str]) -> None:
    name, real_name, number = new_name(surname), new_name(surname), citizen_number("110105")
    named = await client.send("PATCH", "/api/v1/users/me", {"name": name}, person.auth)
    verified = await client.send(
        "POST",
        "/api/v1/users/me/verification",
        {"realName": real_name, "idType": "ID_CARD", "idNumber": number.lower()},
        person.auth,
    )
    assert named.status_code == 200, named.text
    assert verified.status_code == 200, verified.text
    person.sealed |= {NAME_FIELD: name, REAL_NAME_FIELD: real_name, ID_NUMBER_FIELD: number}
    clear |= {name, real_name, number}


async def add_buyers(client: Client, person: Person, buyers: list[tuple[str, IdType, str]], clear: set[str]) -> None:
    for name, id_type, number in buyers:
        added = await client.send(
            "POST", "/api/v1/users/me/ticket-buyers", {"name": name, "idType": id_type, "idNumber": number}, person.auth
        )
        assert added.status_code == 201, added.text
        buyer_id = int(added.json()["id"])
        person.sealed[ticket_buyer_field(buyer_id, NAME_FIELD)] = name
        person.sealed[ticket_buyer_field(buyer_id, ID_NUMBER_FIELD)] = number
        clear |= {name, number}


async def refusals(client: Client, kept: Person, deleted: Person, clear: set[str]) -> None:
    """Error paths whose bodies and log lines must not echo what was sent."""
    bad_mobile, stranger, unused = f"12{random.randrange(10**9):09d}", new_mobile(), new_mobile()
    weak = f"pw{unused}x"
    bad_number = with_wrong_check_character(citizen_number("310104"))
    buyer_number = next(
        v for k, v in kept.sealed.items() if k.startswith("ticket-buyer:") and k.endswith(ID_NUMBER_FIELD)
    )
    clear |= {bad_mobile, stranger, unused, weak, bad_number, *WRONG_PASSWORDS}
    expected = [
        (await client.register(bad_mobile), 422, "MOBILE_INVALID"),
        (await client.register(f"+86{kept.mobile}"), 409, "MOBILE_TAKEN"),
        (await client.register(unused, (deleted.email or "").upper()), 409, "EMAIL_TAKEN"),
        (await client.register(unused, password=weak), 422, "PASSWORD_TOO_WEAK"),
        (await client.log_in(WRONG_PASSWORDS[0], mobile=deleted.mobile), 401, None),
        (await client.log_in(WRONG_PASSWORDS[1], email=kept.email or ""), 401, None),
        (await client.log_in(WRONG_PASSWORDS[2], mobile=stranger), 401, None),
        (
            await client.send(
                "POST",
                "/api/v1/users/me/verification",
                {"realName": new_name("上官"), "idType": "ID_CARD", "idNumber": bad_number},
                kept.auth,
            ),
            422,
            "ID_NUMBER_INVALID",
        ),
        (
            await client.send(
                "POST",
                "/api/v1/users/me/ticket-buyers",
                {"name": "x", "idType": "ID_CARD", "idNumber": f" {buyer_number.lower()} "},
                kept.auth,
            ),
            409,
            "TICKET_BUYER_EXISTS",
        ),
        (
            await client.send("DELETE", "/api/v1/users/me", {"password": WRONG_PASSWORDS[0]}, deleted.auth),
            403,
            "PASSWORD_INCORRECT",
        ),
    ]
    for response, status, code in expected:
        assert response.status_code == status, response.text
        assert code is None or response.json()["code"] == code, response.text


@pytest_asyncio.fixture(scope="module")
async def story(system: System) -> Story:
    client = Client(system.http)
    clear = {PASSWORD}
    deleted_mobile, kept_mobile, other_mobile = new_mobile(), new_mobile(), new_mobile()
    deleted = Person(
        deleted_mobile, f"+86 {deleted_mobile[:3]} {deleted_mobile[3:7]} {deleted_mobile[7:]}", new_email()
    )
    kept = Person(kept_mobile, kept_mobile, new_email())
    other = Person(other_mobile, f"0086-{other_mobile}", None)
    clear.add(deleted.typed_mobile.removeprefix("+86 "))
    for person in (deleted, kept, other):
        await open_account(client, person, clear)
    await name_and_verify(client, deleted, "司马", clear)
    await name_and_verify(client, kept, "欧阳", clear)
    other_name = new_name("诸葛")
    assert (await client.send("PATCH", "/api/v1/users/me", {"name": other_name}, other.auth)).status_code == 200
    other.sealed[NAME_FIELD] = other_name
    clear.add(other_name)
    await add_buyers(
        client,
        deleted,
        [
            (new_name("慕容"), IdType.PASSPORT, f"PQ{random.randrange(10**9):09d}"),
            (latin_name(), IdType.HK_MACAO_TRAVEL_PERMIT, f"M{random.randrange(10**10):010d}"),
        ],
        clear,
    )
    await add_buyers(
        client,
        kept,
        [
            (new_name("慕容"), IdType.ID_CARD, citizen_number("440305")),
            (new_name("上官"), IdType.HK_MACAO_TAIWAN_RESIDENCE_PERMIT, citizen_number("810000")),
            (latin_name(), IdType.TAIWAN_TRAVEL_PERMIT, f"{random.randrange(10**10):010d}QX"),
            (latin_name(), IdType.FOREIGN_PERMANENT_RESIDENCE_CARD, permanent_residence_number()),
        ],
        clear,
    )
    await refusals(client, kept, deleted, clear)
    for person in (deleted, kept, other):
        await client.send("GET", "/api/v1/users/me", auth=person.auth)
        await client.send("GET", "/api/v1/users/me/ticket-buyers", auth=person.auth)

    gone = await client.send("DELETE", "/api/v1/users/me", {"password": PASSWORD}, deleted.auth)
    assert gone.status_code == 204, gone.text
    token_after = await client.send("GET", "/api/v1/users/me", auth=deleted.auth)
    again = await client.register(deleted.mobile, deleted.email)
    # The access log reaches the file up to a flush interval after its request.
    await asyncio.sleep(ACCESS_LOG_FLUSH_S * 2)
    return Story(deleted, kept, other, clear, client.responses, token_after, again)


@pytest_asyncio.fixture(scope="module")
async def shards(system: System) -> AsyncIterator[ShardedDatabase]:
    pools = ShardPools(system.settings.postgres)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(system.settings))
    await pools.stop()


@pytest_asyncio.fixture(scope="module")
async def redis(system: System) -> AsyncIterator[Redis]:
    client = create_redis(system.settings.redis)
    yield client
    await client.aclose()


# -- reading every store of the namespace -----------------------------------------------------


async def schema_rows(shards: ShardedDatabase, schema: str) -> list[tuple[str, bytes]]:
    """Every row of every table of the schema, in every shard database, as Postgres prints it."""
    rows = []
    for database, pool in shards.pools:
        tables = await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            schema,
        )
        for table in (t["table_name"] for t in tables):
            records = await pool.fetch(f'SELECT t::text AS row FROM "{schema}"."{table}" t')
            rows += [(f"{database}.{table}", r["row"].encode()) for r in records]
    return rows


async def namespace_messages(settings: Settings) -> list[tuple[str, bytes]]:
    """Every message (key, value, headers) of the namespace's topics and its consumer groups' own."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        prefixes = (settings.kafka.topic_prefix, *(f"{group}-" for group in consumer_groups(settings)))
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
    finally:
        await admin.close()
    assert settings.kafka.topic("user") in topics
    assert settings.kafka.dead_letter_topic(settings.worker.projector_group) in topics
    messages = []
    for topic in topics:
        for record in await read_all(settings, topic):
            parts = [record.key or b"", record.value or b"", *(v for _, v in record.headers)]
            messages.append((f"{topic}/{record.partition}@{record.offset}", b"\n".join(parts)))
    return messages


async def namespace_keys(redis: Redis, tag: str) -> list[tuple[str, bytes]]:
    """Every Redis key holding the namespace's tag (users, captcha, rate limits, program cache,
    aggregate snapshots, projector offsets, ids), with its value dumped whatever its type."""
    dumped = []
    async for key in redis.scan_iter(match=f"*{tag}*", count=1_000):
        kind = flattened(await redis.type(key))
        value: object
        if kind == b"string":
            value = await redis.get(key)
        elif kind == b"hash":
            value = await redis.hgetall(key)
        elif kind == b"stream":
            value = await redis.xrange(key)
        elif kind == b"set":
            value = await redis.smembers(key)
        elif kind == b"zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == b"list":
            value = await redis.lrange(key, 0, -1)
        else:
            value = await redis.dump(key)
        dumped.append((key.decode(errors="replace"), key + b"\n" + flattened(value)))
    return dumped


def flattened(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return b"\n".join(flattened(k) + b"=" + flattened(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return b"\n".join(flattened(v) for v in value)
    return str(value).encode()


def sealed_values(event: UserEvent) -> list[tuple[str, str]]:
    """(field name the value is bound to, token) for every ``*_cipher`` of a user event."""
    sealed = []
    for name, token in event.model_dump().items():
        if not name.endswith("_cipher") or token is None:
            continue
        assert name in CIPHER_FIELDS, f"{type(event).__name__}.{name} is a cipher this test does not know"
        bound_to = CIPHER_FIELDS[name]
        if isinstance(event, TicketBuyerAdded):
            bound_to = ticket_buyer_field(event.ticket_buyer_id, bound_to)
        sealed.append((bound_to, token))
    return sealed


async def sealed_in_log(settings: Settings, user_id: int) -> list[tuple[str, str]]:
    """Every sealed value of one user in the namespace's ``user`` topic, replayed from the start."""
    sealed = []
    for record in await read_all(settings, settings.kafka.topic("user")):
        event = payload_of(decode(record.value))
        if isinstance(event, UserEvent) and event.user_id == user_id:
            sealed += sealed_values(event)
    return sealed


def vault(system: System, shards: ShardedDatabase) -> PersonalDataVault:
    return PersonalDataVault(MasterKeyring.from_settings(system.settings.security), PostgresDataKeyStore(shards))


# -- no clear value at rest -------------------------------------------------------------------


async def test_no_clear_value_is_in_any_row_of_the_namespace_schema(
    system: System, story: Story, shards: ShardedDatabase
) -> None:
    rows = await schema_rows(shards, system.settings.postgres.schema_name)

    assert any(where.split(".")[1].startswith("user_data_key") for where, _ in rows)
    assert leaks(rows, story.clear_values) == []


async def test_the_user_rows_hold_sealed_tokens_so_the_row_check_is_not_vacuous(
    story: Story, shards: ShardedDatabase
) -> None:
    layout, kept = shards.layout, story.kept

    user_row = await shards.fetchval(
        layout.user(kept.user_id), "SELECT t::text FROM {table} t WHERE id = $1", kept.user_id
    )
    buyer_rows = await shards.fetch(
        layout.ticket_buyers(kept.user_id), "SELECT t::text AS row FROM {table} t WHERE user_id = $1", kept.user_id
    )

    assert user_row is not None and user_row.count("pd1.") == 5  # mobile, email, name, real name, ID number
    assert len(buyer_rows) == 4 and all(r["row"].count("pd1.") == 2 for r in buyer_rows)


async def test_no_clear_value_is_in_any_message_of_the_namespace_topics(system: System, story: Story) -> None:
    messages = await namespace_messages(system.settings)

    assert any(where.startswith(system.settings.kafka.topic("user")) for where, _ in messages)
    assert leaks(messages, story.clear_values) == []


async def test_no_clear_value_is_in_any_redis_key_or_value_of_the_namespace(
    system: System, story: Story, redis: Redis
) -> None:
    keys = await namespace_keys(redis, system.settings.postgres.schema_name)

    assert any(where.startswith(f"{system.settings.users.key_prefix}:{{u:") for where, _ in keys)
    assert leaks(keys, story.clear_values) == []


async def test_no_clear_value_is_in_the_api_or_worker_log(system: System, story: Story) -> None:
    logs = [(path.name, path.read_bytes()) for path in (system.api_log, system.api_log.parent / "worker.log")]

    assert all(text for _, text in logs)
    assert leaks(logs, story.clear_values) == []


async def test_responses_show_masks_and_no_clear_value(story: Story) -> None:
    bodies = [
        (f"{r.request.method} {r.request.url.path} → {r.status_code}", r.content + b"\n" + str(r.headers).encode())
        for r in story.responses
    ]
    kept = story.kept.sealed
    masks = [
        mask_mobile(kept[MOBILE_FIELD]),
        mask_email(kept[EMAIL_FIELD]),
        mask_name(kept[NAME_FIELD]),
        mask_name(kept[REAL_NAME_FIELD]),
        *(mask_id_number(value) for name, value in kept.items() if name.endswith(ID_NUMBER_FIELD)),
    ]
    everything = b"\n".join(body for _, body in bodies).decode()

    assert leaks(bodies, story.clear_values) == []
    assert [m for m in masks if m not in everything] == []


# -- crypto-shredding -------------------------------------------------------------------------


async def test_a_deleted_users_values_in_the_log_reveal_nothing(
    system: System, story: Story, shards: ShardedDatabase
) -> None:
    deleted = story.deleted
    sealed = await sealed_in_log(system.settings, deleted.user_id)
    keys = await vault(system, shards).readable_keys_of(deleted.user_id)
    master_keys = system.settings.security.master_key_bytes().values()

    assert {name for name, _ in sealed} == set(deleted.sealed)
    assert keys is not None and keys.shredded
    for name, token in sealed:
        with pytest.raises(PersonalDataShredded):
            keys.reveal(name, token)
        for master_key in master_keys:
            with pytest.raises(UnreadableToken):
                open_sealed("pd1", master_key, token, value_binding(deleted.user_id, name))


async def test_a_kept_users_values_in_the_log_still_reveal_what_was_sent(
    system: System, story: Story, shards: ShardedDatabase
) -> None:
    for person in (story.kept, story.other):
        sealed = await sealed_in_log(system.settings, person.user_id)
        keys = await vault(system, shards).readable_keys_of(person.user_id)

        assert keys is not None and not keys.shredded
        assert {name: keys.reveal(name, token) for name, token in sealed} == person.sealed


async def test_a_deleted_users_data_key_row_is_a_tombstone(story: Story, shards: ShardedDatabase) -> None:
    user_id = story.deleted.user_id

    row = await shards.fetchrow(
        shards.layout.user_data_keys(user_id),
        "SELECT wrapped_keys, shredded, shredded_at FROM {table} WHERE user_id = $1",
        user_id,
    )

    assert row is not None
    assert (row["wrapped_keys"], row["shredded"]) == ([], True) and row["shredded_at"] is not None


async def test_a_deleted_users_token_is_refused_and_mobile_is_free(story: Story) -> None:
    assert story.deleted_token_after.status_code == 401, story.deleted_token_after.text
    assert story.mobile_reregistered.status_code == 201, story.mobile_reregistered.text
    assert int(story.mobile_reregistered.json()["userId"]) != story.deleted.user_id

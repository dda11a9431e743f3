"""Every address, layout, topic, TTL and limit of the system, in one settings object.

Values come from ``DAMAI_*`` environment variables; nested fields use a double
underscore, e.g. ``DAMAI_KAFKA__BOOTSTRAP=127.0.0.1:9092`` or
``DAMAI_POSTGRES__DATABASES='["damai_0","damai_1"]'``. Defaults describe the
local single-machine stack that ``damai stack up`` starts; docs/configuration.md
lists them all.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.program import CatalogueLimits

REPO_ROOT = Path(__file__).resolve().parent.parent

# Public, so for development only (SecuritySettings.uses_development_keys).
_DEVELOPMENT_BLIND_INDEX_KEY = "06qVa/K28wJvn3AD36Hsq1Ixyi1Q/NPY+7+zwZha2Wk="
_DEVELOPMENT_MASTER_KEY_ID = "dev-1"
_DEVELOPMENT_MASTER_KEY = "dubxZLpycZzyHcLN5qz3tnQb8upyaGSaSnq43j8SLyU="
_DEVELOPMENT_TOKEN_SIGNING_KEY = "bSVPnDUnmvhRbwWjmKX1Sg8uSZIxnv3wf36Wm9d4dkA="


class PostgresSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="PostgreSQL server address.")
    port: int = Field(default=55432, description="PostgreSQL port (the local stack avoids the default 5432).")
    user: str = Field(default="damai", description="Role the system connects as; owns every shard database.")
    password: str = Field(default="damai", description="Password of that role.")
    databases: list[str] = Field(
        default_factory=lambda: ["damai_0", "damai_1"],
        description="Shard databases, in shard order; shard i is databases[i].",
    )
    tables_per_database: dict[str, int] = Field(
        default_factory=lambda: {
            "user": 2,
            "user_mobile": 2,
            "user_email": 2,
            "ticket_buyer": 2,
            "order": 4,
            "program": 2,
            "bill": 2,
        },
        description="Physical tables per shard database for each shard group (see docs/sharding.md).",
    )
    dsn_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Full DSN for a database that does not live on host:port.",
    )
    schema_name: str = Field(
        default="public",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Schema the tables live in, in every shard database; a namespace on shared servers.",
    )
    pool_min_size: int = Field(default=1, description="Connections each shard pool keeps open.")
    pool_max_size: int = Field(default=10, description="Most connections a shard pool opens, per process.")
    command_timeout_s: float = Field(default=10.0, description="Longest a single query may run.")
    connect_timeout_s: float = Field(default=3.0, description="Longest to wait for a new connection.")

    def dsn(self, database: str) -> str:
        if database in self.dsn_overrides:
            return self.dsn_overrides[database]
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


class SecuritySettings(BaseModel):
    """The keys of personal-data protection (docs/personal-data.md), each base64 of 32 random bytes
    (``python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"``).

    The defaults are for development only: they are public, in this file. ``uses_development_keys``
    tells a deployment that forgot to set its own.
    """

    blind_index_key: SecretStr = Field(
        default=SecretStr(_DEVELOPMENT_BLIND_INDEX_KEY),
        description="DEVELOPMENT ONLY default. Base64 key (32+ bytes) of the keyed hash (HMAC-SHA256) that indexes "
        "mobiles, emails and ID numbers for lookups and shard routing; changing it needs a re-index.",
    )
    master_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {_DEVELOPMENT_MASTER_KEY_ID: SecretStr(_DEVELOPMENT_MASTER_KEY)},
        description="DEVELOPMENT ONLY default. Master keys by id (1-32 of A-Z a-z 0-9 _ -), each base64 of 32 bytes, "
        "that wrap the per-user data keys; keep a retired key until every data key is rewrapped.",
    )
    current_master_key_id: str = Field(
        default=_DEVELOPMENT_MASTER_KEY_ID,
        description="The master key new and rewrapped data keys are wrapped under; one of master_keys.",
    )

    @model_validator(mode="after")
    def _keys_are_usable(self) -> SecuritySettings:
        if len(self.blind_index_key_bytes()) < _KEY_BYTES:
            raise ValueError(f"blind_index_key: base64 of at least {_KEY_BYTES} bytes")
        for key_id in self.master_keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"master_keys: id {key_id!r} is not 1-32 of A-Z a-z 0-9 _ -")
        if any(len(material) != _KEY_BYTES for material in self.master_key_bytes().values()):
            raise ValueError(f"master_keys: each key is base64 of exactly {_KEY_BYTES} bytes")
        if self.current_master_key_id not in self.master_keys:
            raise ValueError("current_master_key_id names no key of master_keys")
        return self

    def blind_index_key_bytes(self) -> bytes:
        return _base64_key(self.blind_index_key, "blind_index_key")

    def master_key_bytes(self) -> dict[str, bytes]:
        return {key_id: _base64_key(key, f"master_keys[{key_id}]") for key_id, key in self.master_keys.items()}

    def uses_development_keys(self) -> bool:
        """True when any key is one of the public development defaults."""
        keys = {self.blind_index_key.get_secret_value(), *(k.get_secret_value() for k in self.master_keys.values())}
        return bool(keys & {_DEVELOPMENT_BLIND_INDEX_KEY, _DEVELOPMENT_MASTER_KEY})


_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _base64_key(key: SecretStr, name: str) -> bytes:
    try:
        return base64.b64decode(key.get_secret_value(), validate=True)
    except binascii.Error as error:
        raise ValueError(f"{name}: not base64") from error


class PasswordSettings(BaseModel):
    """argon2id parameters of password hashing (docs/users.md). Raising them makes new hashes dearer;
    existing hashes keep their own parameters and are rehashed at the next successful login."""

    time_cost: int = Field(
        default=2,
        ge=1,
        le=10,
        description="argon2id passes over memory (OWASP: 2 with 19 MiB). One hash with the defaults takes "
        "23 ms median on the development machine (2 vCPU AMD EPYC); 64 MiB and 3 passes take 184 ms.",
    )
    memory_cost_kib: int = Field(
        default=19_456,
        ge=8_192,
        le=1_048_576,
        description="argon2id memory per hash in KiB (19456 = 19 MiB, OWASP's minimum for argon2id); "
        "a process hashing N passwords at once holds N times this.",
    )
    parallelism: int = Field(default=1, ge=1, le=8, description="argon2id lanes per hash (OWASP: 1).")


class TokenSettings(BaseModel):
    """Signed access tokens (JWT, HS256; docs/users.md). The default key is for development only."""

    signing_key: SecretStr = Field(
        default=SecretStr(_DEVELOPMENT_TOKEN_SIGNING_KEY),
        description="DEVELOPMENT ONLY default. Base64 key (32+ bytes) that signs and verifies access tokens "
        "(HMAC-SHA256); changing it logs every user out.",
    )
    access_token_ttl_s: int = Field(
        default=3_600, ge=60, le=86_400, description="Life of an access token from its issue (its exp claim)."
    )
    leeway_s: int = Field(
        default=5, ge=0, le=60, description="Clock skew allowed between processes when checking exp and iat."
    )
    verified_cache_entries: int = Field(
        default=65_536,
        ge=0,
        le=1_000_000,
        description="Tokens each process remembers as verified (until their exp), so a buyer's next request "
        "skips the signature check; 0 checks every time.",
    )

    @model_validator(mode="after")
    def _key_is_usable(self) -> TokenSettings:
        if len(self.signing_key_bytes()) < _KEY_BYTES:
            raise ValueError(f"signing_key: base64 of at least {_KEY_BYTES} bytes")
        return self

    def signing_key_bytes(self) -> bytes:
        return _base64_key(self.signing_key, "signing_key")

    def uses_development_key(self) -> bool:
        return self.signing_key.get_secret_value() == _DEVELOPMENT_TOKEN_SIGNING_KEY


class RedisSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Redis server address.")
    port: int = Field(default=56379, description="Redis port (the local stack avoids the default 6379).")
    db: int = Field(default=0, description="Redis logical database.")
    socket_timeout_s: float = Field(default=2.0, description="Longest a command may wait for its reply.")
    connect_timeout_s: float = Field(default=2.0, description="Longest to wait for a connection.")
    max_connections: int = Field(default=64, description="Connection pool size per process.")
    health_check_interval_s: int = Field(
        default=30, description="Idle connections are PINGed before reuse after this long."
    )
    maxmemory_mb: int = Field(
        default=512, description="Memory cap of the local Redis (noeviction: writes fail rather than lose data)."
    )

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class ProgramCacheSettings(BaseModel):
    key_prefix: str = Field(
        default="damai",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of every program-cache Redis key (<prefix>:{p:<id>}:detail, the Bloom filter, "
        "the invalidation stream); a namespace on a shared Redis.",
    )
    local_enabled: bool = Field(
        default=True, description="Keep program details in each process's memory (false: Redis, then Postgres)."
    )
    local_max_entries: int = Field(
        default=10_000, ge=1, description="Most program details one process keeps; the least recently used go first."
    )
    local_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a process serves its own copy of a detail; bounds staleness when invalidations "
        "cannot reach it.",
    )
    local_negative_ttl_s: float = Field(
        default=5.0, gt=0, description="How long a process remembers that a program id does not exist."
    )
    seat_map_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long a process reuses a show time's seat map for identical requests (0: build it for "
        "every request; concurrent ones still share one build). A seat taken meanwhile is refused at purchase.",
    )
    seat_layout_max_age_s: int = Field(
        default=60,
        ge=0,
        description="Cache-Control max-age of a show time's seat layout: how long clients and shared caches reuse "
        "it unasked before they revalidate it (If-None-Match, answered 304 while the program is unchanged).",
    )
    seat_layouts_max_entries: int = Field(
        default=32,
        ge=1,
        description="Most show times' seat layouts one process keeps (about 220 bytes a seat: 11 MiB for a "
        "50,000-seat stadium, under 0.5 MiB for a 2,000-seat theatre); the least recently used go first. A "
        "layout is kept while its program's categories stay the same.",
    )
    remaining_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long a process reuses the live remaining counts it read from the Redis inventory for a "
        "program's detail (0: read them for every request); the detail page lags the inventory by at most this.",
    )
    redis_ttl_s: int = Field(default=600, ge=1, description="Shortest life of a program detail in Redis.")
    redis_ttl_jitter_s: int = Field(
        default=120,
        ge=0,
        description="A random 0..this many seconds added to each Redis TTL, so details loaded together do not "
        "expire together.",
    )
    redis_negative_ttl_s: int = Field(
        default=30, ge=1, description="How long Redis remembers that a program id does not exist."
    )
    load_lock_ttl_ms: int = Field(
        default=3_000,
        ge=10,
        description="Life of the Redis key that lets one process at a time load a cold program from Postgres.",
    )
    load_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="Longest a process waits for another one's load to reach Redis before loading it itself.",
    )
    load_poll_s: float = Field(
        default=0.02, gt=0, description="How often a waiting process looks for that load in Redis."
    )
    redis_retries: int = Field(
        default=1,
        ge=0,
        description="Immediate retries of a failed Redis command by the cache's own client (redis-py's default "
        "of 10 with backoff would hold a request about 5 s when Redis is down).",
    )
    redis_retry_after_s: float = Field(
        default=1.0,
        ge=0,
        description="After a Redis error the cache goes straight to Postgres for this long before trying Redis again.",
    )
    bloom_bits: int = Field(
        default=1 << 24,
        ge=64,
        le=1 << 32,
        description="Size in bits of the Bloom filter of existing program ids (2^24 bits = 2 MiB: about 1% "
        "false positives at 1.7 million programs with 7 hashes).",
    )
    bloom_hashes: int = Field(
        default=7, ge=1, le=32, description="Bits set and tested per program id in the Bloom filter."
    )
    bloom_build_batch: int = Field(
        default=10_000, ge=1, description="Program ids sent to Redis per round trip while building the Bloom filter."
    )
    bloom_build_ttl_s: int = Field(
        default=60,
        ge=1,
        description="A Bloom filter build that makes no progress for this long is abandoned (its scratch key expires).",
    )
    bloom_build_at_start: bool = Field(
        default=True,
        description="An API process that finds no Bloom filter builds it from Postgres in the background "
        "(until then unknown ids are answered by the negative cache and Postgres).",
    )
    invalidation_stream_maxlen: int = Field(
        default=10_000,
        ge=1,
        description="About this many invalidations are kept in the Redis Stream (XADD MAXLEN ~).",
    )
    invalidation_read_count: int = Field(
        default=1_000, ge=1, description="Most invalidations the listener takes from the stream per read."
    )
    invalidation_block_ms: int = Field(
        default=5_000, ge=1, description="Longest one XREAD BLOCK of the invalidation listener waits."
    )
    invalidation_retry_s: float = Field(
        default=1.0, gt=0, description="Wait before the invalidation listener reconnects after a Redis error."
    )


class TopicSpec(BaseModel):
    partitions: int = Field(description="Partitions; fixed once the topic exists (keys would move).")
    retention_ms: int = Field(default=-1, description="-1 keeps events forever: the log is the system of record.")


def _default_topics() -> dict[str, TopicSpec]:
    return {
        "reference": TopicSpec(partitions=3),
        "user": TopicSpec(partitions=6),
        "program": TopicSpec(partitions=6),
        "order-requests": TopicSpec(partitions=12),
        "order": TopicSpec(partitions=12),
        "payment": TopicSpec(partitions=12),
    }


class KafkaSettings(BaseModel):
    bootstrap: str = Field(
        default="127.0.0.1:59092", description="Kafka bootstrap servers (host:port, comma-separated)."
    )
    controller_port: int = Field(default=59093, description="KRaft controller port of the local broker.")
    topic_prefix: str = Field(
        default="damai.", description="Prefix of every topic name; a namespace on a shared cluster."
    )
    topics: dict[str, TopicSpec] = Field(
        default_factory=_default_topics, description="Event topic families and their partition counts."
    )
    dead_letter_partitions: int = Field(default=1, description="Partitions of each consumer group's dead-letter topic.")
    replication_factor: int = Field(
        default=1, description="Replicas per partition (1 on the single local broker; 3 in production)."
    )
    heap_mb: int = Field(default=512, description="Heap of the local broker JVM.")
    request_timeout_ms: int = Field(default=15000, description="Client request timeout (producer, admin, Faust).")
    producer_linger_ms: int = Field(default=2, description="How long the producer waits to fill a batch.")
    version: str = Field(
        default="4.1.1", description="Apache Kafka version the local stack installs from Maven Central."
    )

    def topic(self, family: str) -> str:
        """Full topic name of an event family, e.g. ``reference`` → ``damai.reference``."""
        if family not in self.topics:
            raise KeyError(f"unknown topic family {family!r}")
        return f"{self.topic_prefix}{family}"

    def dead_letter_topic(self, consumer_group: str) -> str:
        return f"{self.topic_prefix}dlq.{consumer_group}"


class ElasticsearchSettings(BaseModel):
    url: str = Field(default="http://127.0.0.1:59200", description="Elasticsearch HTTP endpoint.")
    index_prefix: str = Field(default="damai-", description="Prefix of every index and index template name.")
    heap_mb: int = Field(default=512, description="Heap of the local Elasticsearch JVM.")
    version: str = Field(
        default="9.2.4", description="Elasticsearch version the local stack installs from Maven Central."
    )
    request_timeout_s: float = Field(default=5.0, description="Client request timeout.")
    retry_after_s: float = Field(
        default=1.0,
        ge=0,
        description="After Elasticsearch could not answer, search and home go straight to Postgres for this long "
        "before trying it again.",
    )
    java_home: str = Field(
        default="",
        description="JDK 21+ for Elasticsearch; empty picks the newest under /usr/lib/jvm.",
    )
    os_user: str = Field(default="damai-es", description="Unprivileged OS user the local Elasticsearch runs as.")


DEVELOPMENT_ADMIN_TOKEN = "damai-admin-dev-token"
DEVELOPMENT_ENVIRONMENTS = frozenset({"development", "test"})


class ApiSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the API binds.")
    port: int = Field(default=8000, description="Port the API listens on.")
    admin_token: str = Field(
        default=DEVELOPMENT_ADMIN_TOKEN,
        description="Bearer credential for /api/v1/admin routes; change it outside development.",
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="Time zone of calendar filters (today, tomorrow, this week, this month)."
    )
    search_cache_ttl_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a process reuses a search or home page answer for identical requests (0: never; "
        "concurrent identical requests still share one query). New programs and changes show up this much later.",
    )
    search_cache_max_entries: int = Field(
        default=10_000, ge=1, description="Most search and home page answers one process keeps."
    )
    home_default_area_id: int = Field(default=110000, description="Area of the home page when the caller names none.")
    home_programs_per_category: int = Field(
        default=7, ge=1, description="Programs per category section of the home page."
    )
    readiness_timeout_s: float = Field(default=2.0, description="Longest /readyz waits for each dependency.")
    command_ack_timeout_s: float = Field(
        default=10.0, description="Longest a command waits for Kafka to acknowledge its event before 503."
    )
    body_limit_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Largest request body of a route that body_limits does not name; a larger one is answered "
        "413 PAYLOAD_TOO_LARGE, before it is read when its Content-Length says so.",
    )
    body_limits: dict[str, int] = Field(
        default_factory=lambda: {
            "POST /api/v1/admin/programs": 8 * 1024 * 1024,
            "POST /api/v1/captcha": 1024,
            "POST /api/v1/captcha/check": 1024,
        },
        description="Largest request body of the routes named ('METHOD /path/{template}'). A program with a "
        "50,000-seat stadium's seats listed one by one is 2.2 MB a show time as compact JSON, 5.9 MB indented.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a client may take to send a request body; a slower one is answered "
        "408 REQUEST_TIMEOUT and its connection closed.",
    )
    refused_body_drain_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="After answering a request whose body it will not read (401, 413, ...), the API reads and "
        "discards up to this much of the body, within body_timeout_s, before it closes the connection: a client "
        "still sending then reads the answer instead of a connection reset.",
    )

    @model_validator(mode="after")
    def _body_limits_name_routes(self) -> ApiSettings:
        for route, limit in self.body_limits.items():
            method, _, path = route.partition(" ")
            if not method.isupper() or not path.startswith("/") or limit < 0:
                raise ValueError(f"body_limits: {route!r}: {limit} is not 'METHOD /path': bytes (≥ 0)")
        return self


class RateLimitSettings(BaseModel):
    """Requests per client IP address per route group, counted in Redis in fixed windows
    (``lua/fixed_window_limit.lua``); one over the limit is refused with 429 ``RATE_LIMITED``."""

    key_prefix: str = Field(
        default="damai",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of every rate-limit counter's Redis key (<prefix>:rl:{ip:<address>}:<group>); "
        "a namespace on a shared Redis.",
    )
    admin_limit: int = Field(
        default=100, ge=1, description="Requests one IP address may send to the admin command routes per window."
    )
    admin_window_ms: int = Field(
        default=1_000, ge=1, description="Length of the admin command routes' rate-limit window."
    )
    captcha_limit: int = Field(
        default=20,
        ge=1,
        description="Captcha images (POST /api/v1/captcha) one IP address may ask for per window; each costs "
        "about 4 ms of CPU (docs/users.md).",
    )
    captcha_window_ms: int = Field(default=60_000, ge=1, description="Length of the captcha images' rate-limit window.")
    captcha_check_limit: int = Field(
        default=120,
        ge=1,
        description="Captcha checks (POST /api/v1/captcha/check) one IP address may send per window; each leaves "
        "a key in Redis for DAMAI_CAPTCHA__ID_TTL_S.",
    )
    captcha_check_window_ms: int = Field(
        default=60_000, ge=1, description="Length of the captcha checks' rate-limit window."
    )
    registration_limit: int = Field(
        default=20,
        ge=1,
        description="Registrations (POST /api/v1/users) one IP address may send per window; each costs an argon2id "
        "hash (docs/users.md).",
    )
    registration_window_ms: int = Field(
        default=60_000, ge=1, description="Length of the registrations' rate-limit window."
    )
    login_limit: int = Field(
        default=60, ge=1, description="Logins (POST /api/v1/sessions) one IP address may send per window."
    )
    login_window_ms: int = Field(default=60_000, ge=1, description="Length of the logins' rate-limit window.")
    user_command_limit: int = Field(
        default=60,
        ge=1,
        description="Changes one signed-in user may make per window to their account (profile, password, "
        "verification, ticket buyers, deletion, logout).",
    )
    user_command_window_ms: int = Field(
        default=60_000, ge=1, description="Length of the per-user account changes' rate-limit window."
    )
    order_limit: int = Field(
        default=20, ge=1, description="Order requests (POST /api/v1/orders) one signed-in user may send per window."
    )
    order_window_ms: int = Field(default=10_000, ge=1, description="Length of the per-user order rate-limit window.")


class CaptchaSettings(BaseModel):
    """The captcha gate in front of registration (docs/users.md)."""

    key_prefix: str = Field(
        default="damai",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of every captcha Redis key (<prefix>:{captcha:<id>}:need and :answer, "
        "<prefix>:{captcha-window}:registrations); a namespace on a shared Redis.",
    )
    always: bool = Field(default=False, description="Require a captcha for every registration, whatever the load.")
    threshold_per_second: float = Field(
        default=100.0,
        ge=0,
        description="Registrations per second, over the window, above which a captcha is required.",
    )
    window_ms: int = Field(
        default=1_000,
        ge=100,
        le=3_600_000,
        description="Length of the fixed window registrations are counted in (it starts at its first registration).",
    )
    id_ttl_s: int = Field(
        default=600,
        ge=1,
        description="How long a captcha id and its check's decision live: a registration must name it within this.",
    )
    answer_ttl_s: int = Field(
        default=120, ge=1, description="How long the answer of a captcha image can be given (once)."
    )
    answer_length: int = Field(default=5, ge=4, le=8, description="Characters in a captcha image's answer.")
    image_width: int = Field(default=160, ge=80, le=400, description="Width of a captcha image in pixels.")
    image_height: int = Field(default=60, ge=30, le=200, description="Height of a captcha image in pixels.")


class UserSettings(BaseModel):
    """Accounts, sessions and ticket buyers (docs/users.md)."""

    key_prefix: str = Field(
        default="damai",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of every user Redis key (the registration Bloom filter, login failure counters, "
        "revoked tokens, each user's projected state and ticket buyers); a namespace on a shared Redis.",
    )
    ticket_buyers_max: int = Field(default=20, ge=1, le=100, description="Most ticket buyers one user may keep.")
    registration_wait_s: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="Longest registration waits for the new account to be projected (so that it can log in at "
        "once) before it answers 503 USER_NOT_CONFIRMED.",
    )
    bloom_bits: int = Field(
        default=143_775_876,
        ge=1024,
        le=4_294_967_295,
        description="Bits of the registration Bloom filter (mobiles and emails in use): 10 million members at "
        "0.1 % false positives need 143,775,876 bits (17.1 MiB) and 10 hashes. Changing it rebuilds the filter.",
    )
    bloom_hashes: int = Field(
        default=10, ge=1, le=32, description="Hashes per member of the registration Bloom filter."
    )
    bloom_build_batch: int = Field(
        default=5_000, ge=1, description="Members added per round trip while the registration Bloom filter is rebuilt."
    )
    bloom_build_ttl_s: int = Field(
        default=600, ge=1, description="Longest one rebuild of the registration Bloom filter may hold its builder lock."
    )
    login_failures_max: int = Field(
        default=5,
        ge=1,
        description="Failed logins one identifier (mobile or email) may have per window; the next is refused with "
        "429 LOGIN_LOCKED until the window ends, whether or not the account exists.",
    )
    login_window_ms: int = Field(
        default=60_000, ge=1_000, description="Length of the window login failures are counted (and locked) in."
    )
    revocation_poll_block_ms: int = Field(
        default=200,
        ge=10,
        le=1_000,
        description="How long each API process's reader of revoked tokens blocks on the stream; a revoked token "
        "is refused by every process within about this much.",
    )


class OrderSettings(BaseModel):
    """The purchase path (docs/orders.md)."""

    key_prefix: str = Field(
        default="damai",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of the order keys outside the programs' hash slots (idempotency keys, each user's "
        "order index); a namespace on a shared Redis.",
    )
    decision_deadline_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long after it is accepted an order request may still be decided; the allocator rejects "
        "it with DEADLINE_PASSED after that, reserving nothing.",
    )
    wait_max_s: int = Field(
        default=10, ge=0, le=60, description="Longest a client may ask POST /api/v1/orders to wait (Prefer: wait=N)."
    )
    idempotency_ttl_s: int = Field(
        default=86_400, ge=60, description="How long an Idempotency-Key names the order it first placed."
    )
    payment_window_s: float | None = Field(
        default=None,
        gt=0,
        description="When set, every hold's payment deadline is this many seconds after its decision instead of "
        "the program's paymentMinutes: for expiry drills and tests, never for a real sale.",
    )
    cancel_wait_s: float = Field(
        default=5.0,
        ge=0,
        le=30,
        description="Longest POST /api/v1/orders/{n}/cancel waits for the lifecycle to end the order before "
        "answering 202.",
    )
    view_ttl_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="How long a user's order stays readable from Redis (its decision and program) before only "
        "Postgres answers.",
    )


class WorkerSettings(BaseModel):
    projector_group: str = Field(
        default="damai-projector", description="Consumer group (Faust app id) of the projector worker."
    )
    batch_size: int = Field(default=500, description="Most events a projector applies in one batch.")
    batch_within_s: float = Field(default=0.2, description="Longest a projector waits to fill a batch.")
    retry_initial_s: float = Field(default=0.2, description="First backoff after a store outage; doubles per retry.")
    retry_max_s: float = Field(default=5.0, description="Longest backoff between retries.")
    session_timeout_s: float = Field(
        default=10.0, description="A worker silent this long is dropped from its group and its partitions move."
    )
    heartbeat_interval_s: float = Field(default=3.0, description="How often a worker tells its group it is alive.")
    rebalance_timeout_s: float = Field(
        default=20.0,
        description="Longest the broker waits for the members of a group to rejoin a rebalance. A worker killed "
        "after it asked to rejoin holds its group up this long (Faust's default is 60 s).",
    )
    allocator_group: str = Field(
        default="damai-allocator", description="Consumer group of the seat allocators (over order-requests)."
    )
    lifecycle_group: str = Field(
        default="damai-lifecycle", description="Consumer group of the order lifecycles (over order)."
    )
    lifecycle_tick_ms: int = Field(
        default=500,
        ge=50,
        le=1_000,
        description="How often a lifecycle looks for holds past their payment deadline (they expire within "
        "about this much after it).",
    )
    allocator_batch_size: int = Field(
        default=1_000, ge=1, le=100_000, description="Most order requests an allocator decides per fetch."
    )
    allocator_poll_ms: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description="Longest an allocator waits for order requests before deciding what it has (a fetch returns "
        "at once when requests are waiting).",
    )
    web_port: int = Field(default=6066, description="Faust web port, when a worker enables it.")
    data_dir: str = Field(
        default="", description="Faust's local data directory; empty puts it under the state directory."
    )


class AlipaySettings(BaseModel):
    """The Alipay channel (infra/payments/alipay.py). The defaults point at the local sandbox
    (``damai sandbox-pay``), whose key pair lives under the state directory."""

    app_id: str = Field(default="2021000000000001", description="The app id Alipay issued; notifications must name it.")
    seller_id: str = Field(
        default="", description="The seller (PID) notifications must name; empty accepts any seller of the app."
    )
    gateway: str = Field(
        default="http://127.0.0.1:18080/gateway.do",
        description="The open API gateway (Alipay's, or the sandbox's on loopback).",
    )
    app_private_key_file: str = Field(
        default="",
        description="PEM file of the app's RSA private key (signs requests); empty: the sandbox's, under the "
        "state directory.",
    )
    alipay_public_key_file: str = Field(
        default="",
        description="PEM file of Alipay's RSA public key (verifies notifications and answers); empty: the "
        "sandbox's, under the state directory.",
    )
    notify_url: str = Field(
        default="",
        description="Where Alipay sends its asynchronous notifications (this API's notify route, as the "
        "provider reaches it); empty: this API's own address (http://<api.host>:<api.port>/api/v1/payments/"
        "alipay/notify), right for the sandbox.",
    )
    return_url: str = Field(default="", description="Where the payment page sends the buyer back; empty for none.")
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Longest a call to the gateway may take.")


class PaymentSettings(BaseModel):
    """Paying, reconciling and refunding (docs/payments.md)."""

    channels: list[str] = Field(default_factory=lambda: ["alipay"], description="The channels buyers may pay by.")
    alipay: AlipaySettings = Field(default_factory=AlipaySettings)
    sandbox_host: str = Field(default="127.0.0.1", description="Address `damai sandbox-pay` binds.")
    sandbox_port: int = Field(default=18080, description="Port `damai sandbox-pay` listens on.")
    group: str = Field(
        default="damai-payments",
        description="Consumer group of the payment processors (notifications to orders, refunds, reconciliation).",
    )
    reconcile_after_s: float = Field(
        default=180.0,
        gt=0,
        description="An unpaid order's bill this old without a notification is asked about at the provider.",
    )
    reconcile_tick_s: float = Field(default=5.0, gt=0, le=600, description="How often the reconciler looks.")
    reconcile_batch: int = Field(
        default=500, ge=1, le=100_000, description="Most bills one reconciler tick asks about."
    )
    reconcile_concurrency: int = Field(
        default=32, ge=1, le=1_000, description="Provider queries one reconciler has in flight at once."
    )
    refund_retry_initial_s: float = Field(default=1.0, gt=0, description="First wait after a failed refund; doubles.")
    refund_retry_max_s: float = Field(default=300.0, gt=0, description="Longest wait between refund attempts.")
    check_before_expiry: bool = Field(
        default=True,
        description="Ask the provider before expiring an order with an open bill, so a buyer who paid in the "
        "last second is not expired.",
    )


class ObservabilitySettings(BaseModel):
    """Metrics of the processes and the local Prometheus (docs/operations.md)."""

    metrics_ports: dict[str, int] = Field(
        default_factory=lambda: {"worker": 9101, "allocator": 9102, "lifecycle": 9103, "payments": 9104},
        description="Port of each processor kind's /metrics (on 127.0.0.1; the API serves its own at /metrics). "
        "0 turns a kind's off. A second process of a kind on one machine needs its own: "
        "DAMAI_OBSERVABILITY__METRICS_PORT.",
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65_535, description="This process's /metrics port, over metrics_ports for its kind."
    )
    lag_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="How often a processor measures its consumer lag against the broker."
    )
    prometheus_port: int = Field(default=9090, description="Port of the local Prometheus (damai stack up prometheus).")
    scrape_interval_s: int = Field(default=5, ge=1, le=300, description="How often Prometheus scrapes every target.")
    request_metrics: bool = Field(
        default=True,
        description="Count and time every API request (damai_http_*). Off only to measure what they cost.",
    )


class RunSettings(BaseModel):
    """`damai run`: its processes kept up (docs/operations.md)."""

    restart_initial_s: float = Field(default=1.0, gt=0, description="First wait before a dead process is restarted.")
    restart_max_s: float = Field(default=30.0, gt=0, description="Longest wait between restarts (it doubles).")
    healthy_after_s: float = Field(
        default=30.0, gt=0, description="A process up this long is healthy again: its next restart waits the least."
    )


class RebuildSettings(BaseModel):
    """`damai rebuild` and `damai verify` of the read models (docs/operations.md, "Rebuilding")."""

    batch_size: int = Field(default=5_000, ge=1, le=100_000, description="Events a rebuild applies per batch.")
    caught_up_within: int = Field(
        default=1_000,
        ge=0,
        description="A rebuild freezes the live projector to swap once it is at most this many events behind it.",
    )
    lock_timeout_ms: int = Field(
        default=2_000,
        ge=1,
        description="Longest a swap waits for a table lock before it lets go and tries again (a long read holds one).",
    )
    swap_attempts: int = Field(
        default=5, ge=1, le=100, description="Tries at the freeze and swap before a rebuild gives up."
    )
    keep_replaced: bool = Field(
        default=True,
        description="Keep what a rebuild replaced (Postgres tables in a schema of their own, the old search index) "
        "until an operator drops it.",
    )


class SearchAvailabilitySettings(BaseModel):
    """The search availability processor: the sold-out state of the search documents, kept up with
    holds and their endings (projections/search_availability.py)."""

    batch_size: int = Field(
        default=2_000, ge=1, le=100_000, description="Most order events the processor reads the availability after."
    )
    batch_within_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="Longest it gathers order events before reading the availability of their programs: a "
        "search document changes at most about this often per program during an on-sale.",
    )
    write_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Writes of one batch's documents refused because their program changed meanwhile before "
        "the batch is retried as if Elasticsearch were busy.",
    )


class IdSettings(BaseModel):
    key_tag: str = Field(
        default="ids",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Redis hash tag of the worker-id keys ({tag}:worker:<n>); a namespace on a shared Redis.",
    )
    lease_ttl_ms: int = Field(
        default=10_000,
        ge=30,
        description="A worker-id lease lapses this long after its last renewal; renewed every third of it.",
    )
    lease_safety_margin_ms: int = Field(
        default=2_000,
        ge=0,
        description="A process stops issuing ids this long before its lease could lapse "
        "(covers Redis round trips, pauses, clock-rate drift).",
    )
    renew_retry_ms: int = Field(default=500, ge=1, description="Wait before retrying a failed lease renewal.")
    max_clock_step_back_ms: int = Field(
        default=5,
        ge=0,
        description="A generator waits out a clock step back up to this long; a longer one refuses ids.",
    )
    max_high_water_wait_ms: int = Field(
        default=1_000,
        ge=0,
        description="A new holder of a worker id waits up to this long for its clock to pass the "
        "previous holder's high-water mark; further behind, it refuses to start.",
    )

    @model_validator(mode="after")
    def _renewal_fits_in_the_lease(self) -> IdSettings:
        # Renewals come every third of the TTL; the margin must leave room for at least one retry.
        if self.lease_safety_margin_ms >= self.lease_ttl_ms * 2 // 3:
            raise ValueError("lease_safety_margin_ms must be under two thirds of lease_ttl_ms")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAMAI_", env_nested_delimiter="__")

    environment: str = Field(
        default="development",
        description=(
            "Name of this deployment, for logs. Outside 'development' and 'test' the public development"
            " secrets (admin token, personal-data keys, token signing key) are refused at start."
        ),
    )
    state_dir: Path = Field(
        default=REPO_ROOT / ".stack", description="Where the local stack keeps its data, logs and pid files."
    )
    log_level: str = Field(default="INFO", description="Log level of every process.")
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable console output).")
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    search_availability: SearchAvailabilitySettings = Field(default_factory=SearchAvailabilitySettings)
    ids: IdSettings = Field(default_factory=IdSettings)
    program_cache: ProgramCacheSettings = Field(default_factory=ProgramCacheSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    captcha: CaptchaSettings = Field(default_factory=CaptchaSettings)
    users: UserSettings = Field(default_factory=UserSettings)
    orders: OrderSettings = Field(default_factory=OrderSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    run: RunSettings = Field(default_factory=RunSettings)
    rebuild: RebuildSettings = Field(default_factory=RebuildSettings)
    catalogue: CatalogueLimits = Field(default_factory=CatalogueLimits)

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        public = [
            name
            for name, used in (
                ("DAMAI_API__ADMIN_TOKEN", self.api.admin_token == DEVELOPMENT_ADMIN_TOKEN),
                ("DAMAI_SECURITY__*_KEY(S)", self.security.uses_development_keys()),
                ("DAMAI_TOKENS__SIGNING_KEY", self.tokens.uses_development_key()),
            )
            if used
        ]
        if public:
            raise ValueError(f"environment {self.environment!r} uses the public development secrets: {public}")
        if self.orders.payment_window_s is not None:
            raise ValueError(
                f"environment {self.environment!r}: DAMAI_ORDERS__PAYMENT_WINDOW_S is for drills and tests only"
            )
        return self

    def namespaced(self, tag: str) -> Settings:
        """The same stack under other topic names, consumer group and index prefix.

        Lets a second environment (a test run, a benchmark) share the servers
        without reading or writing the first one's topics, tables or indices.
        ``tag`` must be a valid lower-case identifier.
        """
        return self.model_copy(
            update={
                "kafka": self.kafka.model_copy(update={"topic_prefix": f"{tag}."}),
                "worker": self.worker.model_copy(
                    update={
                        "projector_group": f"{tag}-projector",
                        "allocator_group": f"{tag}-allocator",
                        "lifecycle_group": f"{tag}-lifecycle",
                    }
                ),
                "elasticsearch": self.elasticsearch.model_copy(update={"index_prefix": f"{tag}-"}),
                "postgres": self.postgres.model_copy(update={"schema_name": tag}),
                "ids": self.ids.model_copy(update={"key_tag": f"{tag}-ids"}),
                "program_cache": self.program_cache.model_copy(update={"key_prefix": tag}),
                "rate_limits": self.rate_limits.model_copy(update={"key_prefix": tag}),
                "captcha": self.captcha.model_copy(update={"key_prefix": tag}),
                "users": self.users.model_copy(update={"key_prefix": tag}),
                "orders": self.orders.model_copy(update={"key_prefix": tag}),
                "payments": self.payments.model_copy(update={"group": f"{tag}-payments"}),
            }
        )

    def namespace_env(self) -> dict[str, str]:
        """The DAMAI_* variables that give a child process this object's namespace and ports."""
        return {
            "DAMAI_KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix,
            "DAMAI_WORKER__PROJECTOR_GROUP": self.worker.projector_group,
            "DAMAI_WORKER__ALLOCATOR_GROUP": self.worker.allocator_group,
            "DAMAI_WORKER__LIFECYCLE_GROUP": self.worker.lifecycle_group,
            "DAMAI_PAYMENTS__GROUP": self.payments.group,
            "DAMAI_ELASTICSEARCH__INDEX_PREFIX": self.elasticsearch.index_prefix,
            "DAMAI_POSTGRES__SCHEMA_NAME": self.postgres.schema_name,
            "DAMAI_IDS__KEY_TAG": self.ids.key_tag,
            "DAMAI_PROGRAM_CACHE__KEY_PREFIX": self.program_cache.key_prefix,
            "DAMAI_RATE_LIMITS__KEY_PREFIX": self.rate_limits.key_prefix,
            "DAMAI_CAPTCHA__KEY_PREFIX": self.captcha.key_prefix,
            "DAMAI_USERS__KEY_PREFIX": self.users.key_prefix,
            "DAMAI_ORDERS__KEY_PREFIX": self.orders.key_prefix,
            "DAMAI_API__PORT": str(self.api.port),
            "DAMAI_STATE_DIR": str(self.state_dir),
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

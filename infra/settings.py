"""Every address, layout, topic, TTL and limit of the system, in one settings object.

Values come from ``DAMAI_*`` environment variables; nested fields use a double
underscore, e.g. ``DAMAI_KAFKA__BOOTSTRAP=127.0.0.1:9092`` or
``DAMAI_POSTGRES__DATABASES='["damai_0","damai_1"]'``. Defaults describe the
local single-machine stack that ``damai stack up`` starts; docs/configuration.md
lists them all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 55432
    user: str = "damai"
    password: str = "damai"
    databases: list[str] = Field(
        default_factory=lambda: ["damai_0", "damai_1"],
        description="Shard databases, in shard order; shard i is databases[i].",
    )
    dsn_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Full DSN for a database that does not live on host:port.",
    )
    pool_min_size: int = 1
    pool_max_size: int = 10
    command_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0

    def dsn(self, database: str) -> str:
        if database in self.dsn_overrides:
            return self.dsn_overrides[database]
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


class RedisSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 56379
    db: int = 0
    socket_timeout_s: float = 2.0
    connect_timeout_s: float = 2.0
    max_connections: int = 64
    health_check_interval_s: int = 30
    maxmemory_mb: int = 512

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class TopicSpec(BaseModel):
    partitions: int
    retention_ms: int = -1
    """-1 keeps events forever: the log is the system of record."""


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
    bootstrap: str = "127.0.0.1:59092"
    controller_port: int = 59093
    topic_prefix: str = "damai."
    topics: dict[str, TopicSpec] = Field(default_factory=_default_topics)
    dead_letter_partitions: int = 1
    replication_factor: int = 1
    heap_mb: int = 512
    request_timeout_ms: int = 15000
    producer_linger_ms: int = 2
    version: str = "4.1.1"

    def topic(self, family: str) -> str:
        """Full topic name of an event family, e.g. ``reference`` → ``damai.reference``."""
        if family not in self.topics:
            raise KeyError(f"unknown topic family {family!r}")
        return f"{self.topic_prefix}{family}"

    def dead_letter_topic(self, consumer_group: str) -> str:
        return f"{self.topic_prefix}dlq.{consumer_group}"


class ElasticsearchSettings(BaseModel):
    url: str = "http://127.0.0.1:59200"
    index_prefix: str = "damai-"
    heap_mb: int = 512
    version: str = "9.2.4"
    request_timeout_s: float = 5.0
    java_home: str = Field(
        default="",
        description="JDK 21+ for Elasticsearch; empty picks the newest under /usr/lib/jvm.",
    )
    os_user: str = "damai-es"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: str = Field(
        default="damai-admin-dev-token",
        description="Bearer credential for /api/v1/admin routes; change it outside development.",
    )
    readiness_timeout_s: float = 2.0
    command_ack_timeout_s: float = 10.0


class WorkerSettings(BaseModel):
    projector_group: str = "damai-projector"
    batch_size: int = 500
    batch_within_s: float = 0.2
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    web_port: int = 6066
    data_dir: str = ""
    """Faust's local data directory; empty puts it under the state directory."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAMAI_", env_nested_delimiter="__")

    environment: str = "development"
    state_dir: Path = REPO_ROOT / ".stack"
    log_level: str = "INFO"
    log_json: bool = True
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

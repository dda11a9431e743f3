"""The Faust app factory: one app per consumer group, configured from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import structlog

from infra.settings import Settings

log = structlog.get_logger(__name__)

# Faust's commit cadence: offsets of processed events are committed at most this often.
COMMIT_INTERVAL_S = 1.0


def create_app(settings: Settings, *, group: str | None = None, web_port: int | None = None) -> faust.App:
    """A Faust app whose id is the consumer group; in-memory table stores recovered from changelogs."""
    app_id = group or settings.worker.projector_group
    datadir = Path(settings.worker.data_dir or settings.state_dir / "faust") / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        datadir=str(datadir),
        topic_replication_factor=settings.kafka.replication_factor,
        topic_partitions=min(spec.partitions for spec in settings.kafka.topics.values()),
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=COMMIT_INTERVAL_S,
        # On stop, wait until every event taken has been acked: a projector's batch in hand is
        # finished before the agents are cancelled (ADR 0003; tested in test_faust_workers).
        stream_wait_empty=True,
        broker_session_timeout=settings.worker.session_timeout_s,
        broker_heartbeat_interval=settings.worker.heartbeat_interval_s,
        broker_rebalance_timeout=settings.worker.rebalance_timeout_s,
        web_enabled=web_port is not None,
        web_port=web_port or settings.worker.web_port,
        web_host="127.0.0.1",
    )
    _log_assignments(app)
    return app


def _log_assignments(app: faust.App) -> None:
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types the signal loosely
    async def assigned(sender: faust.App, assigned: set[Any], **_: Any) -> None:
        log.info(
            "faust.partitions_assigned",
            group=sender.conf.id,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )

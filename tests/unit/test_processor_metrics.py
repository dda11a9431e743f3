"""A processor's metrics: its lag rule (projections/lag.py), its batches, and its /metrics port
(infra/metrics.py)."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from infra.metrics import ProcessorMetrics, metrics_port, serve_metrics
from infra.settings import ObservabilitySettings, Settings
from projections.lag import lag_of, lags
from tests.processes import free_port


def _with(settings: Settings, **observability: object) -> Settings:
    return settings.model_copy(update={"observability": ObservabilitySettings(**observability)})  # type: ignore[arg-type]


def test_the_lag_is_what_lies_between_the_committed_offset_and_the_end():
    assert lag_of(end=120, committed=100, beginning=0) == 20


def test_a_group_caught_up_has_no_lag():
    assert lag_of(end=120, committed=120, beginning=0) == 0


def test_a_partition_without_a_committed_offset_lags_by_all_it_holds_when_read_from_the_earliest():
    assert lag_of(end=120, committed=None, beginning=30) == 90


def test_a_committed_offset_retention_has_passed_lags_from_the_start_of_the_log():
    assert lag_of(end=120, committed=10, beginning=30) == 90


def test_the_lag_of_every_partition_whose_end_is_known():
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)

    assert lags({a: 10, b: 0}, {a: 0, b: 0}, {a: 4}) == {a: 6, b: 0}


def test_a_batch_counts_its_events_its_size_and_its_time():
    group = f"g-{uuid.uuid4().hex[:8]}"
    labels = {"group": group, "processor": "allocator"}

    ProcessorMetrics(group, "allocator").batch(7, 0.02)
    ProcessorMetrics(group, "allocator").batch(3, 0.01)

    assert REGISTRY.get_sample_value("damai_processor_events_total", labels) == 10
    assert REGISTRY.get_sample_value("damai_processor_batch_events_count", labels) == 2
    assert REGISTRY.get_sample_value("damai_processor_batch_events_sum", labels) == 10
    assert REGISTRY.get_sample_value("damai_processor_batch_seconds_sum", labels) == pytest.approx(0.03)


def test_a_process_port_of_its_own_wins_over_its_kinds(settings: Settings):
    assert metrics_port(_with(settings, metrics_port=9999), "worker") == 9999
    assert metrics_port(_with(settings, metrics_port=0), "worker") == 0


def test_without_a_port_of_its_own_a_process_takes_its_kinds(settings: Settings):
    ports = {"worker": 9101, "allocator": 9102, "lifecycle": 0}
    configured = _with(settings, metrics_ports=ports)

    assert [metrics_port(configured, kind) for kind in ("allocator", "lifecycle", "unknown")] == [9102, 0, 0]


def test_a_process_serves_its_metrics_on_its_port(settings: Settings):
    port = free_port()

    served = serve_metrics(_with(settings, metrics_port=port), "worker")

    assert served == port
    assert "damai_processor_events_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text


def test_a_process_whose_port_is_taken_runs_on_without_metrics(settings: Settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        assert serve_metrics(_with(settings, metrics_port=port), "worker") is None


def test_a_port_of_0_serves_nothing(settings: Settings):
    assert serve_metrics(_with(settings, metrics_port=0), "worker") is None

"""What `damai status` computes from its readings: histogram quantiles, route latencies, lag."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from cli.consumer_lag import PartitionLag
from cli.scrape import quantile, route_latencies, total

API_METRICS = """\
# TYPE damai_http_request_seconds histogram
damai_http_request_seconds_bucket{method="GET",route="/fast",le="0.01"} 100
damai_http_request_seconds_bucket{method="GET",route="/fast",le="0.1"} 100
damai_http_request_seconds_bucket{method="GET",route="/fast",le="+Inf"} 100
damai_http_request_seconds_sum{method="GET",route="/fast"} 0.5
damai_http_request_seconds_count{method="GET",route="/fast"} 100
damai_http_request_seconds_bucket{method="POST",route="/slow",le="0.01"} 0
damai_http_request_seconds_bucket{method="POST",route="/slow",le="0.1"} 10
damai_http_request_seconds_bucket{method="POST",route="/slow",le="+Inf"} 10
damai_http_request_seconds_sum{method="POST",route="/slow"} 0.6
damai_http_request_seconds_count{method="POST",route="/slow"} 10
# TYPE damai_processor_events_total counter
damai_processor_events_total{group="g1",processor="orders"} 5
damai_processor_events_total{group="g1",processor="programs"} 7
damai_processor_events_total{group="g2",processor="orders"} 1
"""
SAMPLES = [s for family in text_string_to_metric_families(API_METRICS) for s in family.samples]


def test_quantile_interpolates_within_its_bucket_as_prometheus_does() -> None:
    assert quantile(0.5, [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]) == 0.1
    assert math.isclose(quantile(0.99, [(0.01, 0.0), (0.1, 10.0), (math.inf, 10.0)]), 0.0991)


def test_quantile_is_the_highest_finite_bound_when_it_falls_in_the_infinite_bucket() -> None:
    assert quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1


def test_quantile_is_nan_when_the_histogram_counts_nothing() -> None:
    assert math.isnan(quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]))


def test_route_latencies_put_the_slowest_first_with_its_mean_when_read_from_metrics() -> None:
    slow, fast = route_latencies(SAMPLES)

    assert (slow.method, slow.route, slow.requests, slow.mean_s) == ("POST", "/slow", 10, 0.06)
    assert fast.route == "/fast"
    assert slow.p99_s > fast.p99_s


def test_total_sums_a_counter_per_label_value() -> None:
    assert total(SAMPLES, "damai_processor_events_total", by="group") == {"g1": 12.0, "g2": 1.0}


def test_lag_counts_from_the_committed_offset_or_from_the_start_when_nothing_was_committed() -> None:
    assert PartitionLag("t", 0, committed=7, start=0, end=10).lag == 3
    assert PartitionLag("t", 0, committed=None, start=4, end=10).lag == 6
    assert PartitionLag("t", 0, committed=2, start=4, end=10).lag == 6

"""The read side's one breaker: a store that failed is left alone for a while, then tried again."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter

from queries.breaker import Breaker


def test_a_store_is_tried_until_it_fails():
    breaker = Breaker("redis", retry_after_s=60)

    assert breaker.allows()


def test_a_store_that_failed_is_left_alone_for_retry_after_s():
    breaker = Breaker("redis", retry_after_s=60)

    breaker.trip(ConnectionError("refused"))

    assert not breaker.allows()


def test_a_store_is_tried_again_once_retry_after_s_has_passed():
    breaker = Breaker("redis", retry_after_s=0.01)
    breaker.trip(ConnectionError("refused"))

    time.sleep(0.02)

    assert breaker.allows()


def test_every_failure_is_counted_when_a_counter_is_given():
    registry = CollectorRegistry()
    failures = Counter("failures", "test", registry=registry)
    breaker = Breaker("redis", retry_after_s=60, failures=failures)

    breaker.trip(ConnectionError("refused"))
    breaker.trip(ConnectionError("refused again"))

    assert registry.get_sample_value("failures_total") == 2

"""Which failures a projector waits out (store outages) and which it dead-letters (the data)."""

from __future__ import annotations

import asyncpg
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError as SearchApiError
from elasticsearch import ConnectionError as SearchConnectionError
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from infra.search import SearchBusy
from projections.projector import is_transient


def search_error(status: int) -> SearchApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "127.0.0.1", 59200))
    return SearchApiError("search error", meta, {})


@pytest.mark.parametrize(
    "error",
    [
        RedisConnectionError("refused"),
        BusyLoadingError("loading the append-only file"),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        SearchConnectionError("refused"),
        search_error(503),
        search_error(429),
        SearchBusy("rejected"),
        ConnectionRefusedError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_store_outages_are_waited_out(error):
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ResponseError("ERR_BAD_ARGUMENT"),
        asyncpg.UniqueViolationError("duplicate key"),
        search_error(400),
        ValueError("a payload the projection cannot read"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_what_is_about_the_data_is_not(error):
    assert not is_transient(error)

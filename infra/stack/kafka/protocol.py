"""Just enough of the Kafka wire protocol to ask a broker for cluster metadata.

A raw Metadata request needs no event loop (``up`` may be called from inside one, where
``asyncio.run`` is refused) and answers in milliseconds, so it suits a health probe.
"""

from __future__ import annotations

import itertools
import socket
import struct
from dataclasses import dataclass

API_KEY_METADATA = 3
# v4 is the oldest Metadata version Kafka 4.x still serves (KIP-896 dropped v0-v3) and it
# predates the "flexible" encoding, so plain fixed-width fields suffice.
METADATA_VERSION = 4
CLIENT_ID = b"damai-stack"
NULL_LENGTH = -1
_correlation_ids = itertools.count(1)


@dataclass(frozen=True)
class Broker:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: list[Broker]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return int(value)

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == NULL_LENGTH:
            return None
        text = self.data[self.offset : self.offset + length].decode()
        self.offset += length
        return text


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def fetch_metadata(host: str, port: int, timeout_s: float) -> ClusterMetadata:
    """Send a Metadata request for no topics; raises OSError or ValueError on failure."""
    correlation_id = next(_correlation_ids)
    header = struct.pack(">hhih", API_KEY_METADATA, METADATA_VERSION, correlation_id, len(CLIENT_ID))
    # Empty topic array (not null: null would mean "all topics"); no auto-creation.
    body = struct.pack(">ib", 0, 0)
    request = header + CLIENT_ID + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        reader = _Reader(_recv_exactly(sock, size))
    if reader.int32() != correlation_id:
        raise ValueError("metadata response carries another correlation id")
    reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.int32()):
        node_id = reader.int32()
        broker_host = reader.nullable_string() or ""
        broker_port = reader.int32()
        reader.nullable_string()  # rack
        brokers.append(Broker(node_id, broker_host, broker_port))
    cluster_id = reader.nullable_string()
    return ClusterMetadata(cluster_id, reader.int32(), brokers)

"""Hashes of Redis keys by their contents: one digest per key, one for a set of keys.

A key's digest covers its name, its type and a canonical rendering of its value, never its TTL:

- a string as it is, but a JSON object with its keys sorted: the scripts' cjson writes an object's
  keys in its table's order and Python in insertion order, so one decision has two spellings;
- a hash's field/value pairs sorted by field; a set's members sorted;
- a sorted set's (member, score) pairs sorted by member, each score as a double (Redis keeps
  doubles: 100001 and 100001.0 are one score);
- a list in order.

The rendering lists the parts' lengths before the parts, so no two contents render alike. Equal
contents hash equal whatever wrote them: a program's keys in Redis compare with the keys its log
describes (projections/rebuild_inventory.py), and where the set's digests differ, the keys' digests
name the keys that do. Which keys are a program's purchase state is ``purchase_state_keys``'s rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from events.program import program_key
from infra.redis_keys import aggregate_snapshot, program_keys_pattern
from projections.verify import SCAN_COUNT

READ_BATCH = 500
"""Keys per pipeline when reading contents: one round trip for their types, one for their values."""
READ_ROUNDS = 3
"""Reads of a key whose type changed between the two round trips before giving up."""
SHOWN_CHARS = 60
"""Characters of a value a difference shows."""


@dataclass(frozen=True)
class StringKey:
    kind: ClassVar[str] = "string"
    value: bytes


@dataclass(frozen=True)
class HashKey:
    kind: ClassVar[str] = "hash"
    fields: Mapping[bytes, bytes]


@dataclass(frozen=True)
class SetKey:
    kind: ClassVar[str] = "set"
    members: frozenset[bytes]


@dataclass(frozen=True)
class SortedSetKey:
    kind: ClassVar[str] = "zset"
    scores: Mapping[bytes, float]


@dataclass(frozen=True)
class ListKey:
    kind: ClassVar[str] = "list"
    items: tuple[bytes, ...]


Contents = StringKey | HashKey | SetKey | SortedSetKey | ListKey


def rendering(contents: Contents) -> bytes:
    """The canonical bytes of a key's contents, its type first."""
    parts: list[bytes]
    match contents:
        case StringKey(value):
            parts = [_canonical_text(value)]
        case HashKey(fields):
            parts = [part for name in sorted(fields) for part in (name, fields[name])]
        case SetKey(members):
            parts = sorted(members)
        case SortedSetKey(scores):
            parts = [part for member in sorted(scores) for part in (member, _score(scores[member]))]
        case ListKey(items):
            parts = list(items)
    return _netstrings([contents.kind.encode(), *parts])


def key_digest(name: bytes, contents: Contents) -> str:
    """SHA-256 of the key's name and canonical contents."""
    return hashlib.sha256(_netstrings([name]) + rendering(contents)).hexdigest()


def _netstrings(parts: list[bytes]) -> bytes:
    """The parts' lengths, then the parts: one rendering for one list of parts, and a fast one (a
    length prefix per part costs twice as much over a stadium's 50,000 seats)."""
    return ",".join(map(str, map(len, parts))).encode() + b";" + b"".join(parts)


def _canonical_text(value: bytes) -> bytes:
    parsed = _json_object(value)
    if parsed is None:
        return value
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _json_object(value: bytes) -> dict[str, Any] | None:
    if not value.startswith(b"{"):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _score(score: float) -> bytes:
    return repr(float(score)).encode()


@dataclass(frozen=True)
class KeyHashes:
    """The digest of each key of a set of keys, and of the whole set."""

    keys: Mapping[str, str]
    """Key name → its digest."""
    digest: str
    """SHA-256 over every key's name and digest, in name order."""

    @classmethod
    def of(cls, contents: Mapping[bytes, Contents]) -> KeyHashes:
        keys = {_name(name): key_digest(name, c) for name, c in sorted(contents.items())}
        whole = hashlib.sha256(_netstrings([part.encode() for pair in keys.items() for part in pair]))
        return cls(keys, whole.hexdigest())

    @property
    def count(self) -> int:
        return len(self.keys)

    def __str__(self) -> str:
        return f"{self.digest[:12]} ({self.count} keys)"

    def differing(self, other: KeyHashes) -> list[str]:
        """The keys whose digest is not the other's, a key of one only among them, in name order."""
        return sorted(k for k in self.keys.keys() | other.keys.keys() if self.keys.get(k) != other.keys.get(k))


@dataclass(frozen=True)
class KeyDifference:
    key: str
    what: str

    def __str__(self) -> str:
        return f"{self.key}: {self.what}"


def differences(
    redis: Mapping[bytes, Contents], log: Mapping[bytes, Contents], differing: Iterable[str]
) -> list[KeyDifference]:
    """How each differing key (``KeyHashes.differing``) differs between its contents in Redis and
    the log's."""
    names = {_name(name): name for name in redis.keys() | log.keys()}
    return [KeyDifference(key, _how(redis.get(names[key]), log.get(names[key]))) for key in differing]


def _how(held: Contents | None, described: Contents | None) -> str:
    if described is None:
        return f"only in Redis ({_size(held)})"
    if held is None:
        return f"not in Redis ({_size(described)} from the log)"
    if held.kind != described.kind:
        return f"{_size(held)} in Redis, {_size(described)} from the log"
    match held, described:
        case StringKey(a), StringKey(b):
            a_object, b_object = _json_object(a), _json_object(b)
            if a_object is not None and b_object is not None:
                return _mapping_how(_fields_of(a_object), _fields_of(b_object), "field")
            return f"{_shown(a)} in Redis, {_shown(b)} from the log"
        case HashKey(a), HashKey(b):
            return _mapping_how(a, b, "field")
        case SortedSetKey(a), SortedSetKey(b):
            return _mapping_how({m: _score(s) for m, s in a.items()}, {m: _score(s) for m, s in b.items()}, "member")
        case SetKey(a), SetKey(b):
            return _mapping_how(dict.fromkeys(a, b""), dict.fromkeys(b, b""), "member")
        case ListKey(a), ListKey(b):
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            return f"{len(a)} items in Redis, {len(b)} from the log; first difference at index {at}"
    return "differs"


def _mapping_how(a: Mapping[bytes, bytes], b: Mapping[bytes, bytes], what: str) -> str:
    """How two sets of field/value pairs differ: fields of one only, fields with other values."""
    parts = []
    if only := sorted(a.keys() - b.keys()):
        parts.append(f"{_count(only, what)} only in Redis, e.g. {_shown(only[0])}")
    if missing := sorted(b.keys() - a.keys()):
        parts.append(f"{_count(missing, what)} only from the log, e.g. {_shown(missing[0])}")
    if other := sorted(k for k in a.keys() & b.keys() if a[k] != b[k]):
        k = other[0]
        parts.append(
            f"{_count(other, what)} with another value, e.g. {_shown(k)}: {_shown(a[k])} in Redis,"
            f" {_shown(b[k])} from the log"
        )
    return "; ".join(parts) or "differs"


def _fields_of(decoded: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.encode(): json.dumps(v, sort_keys=True, ensure_ascii=False).encode() for k, v in decoded.items()}


def _count(items: list[bytes], what: str) -> str:
    return f"{len(items)} {what}{'' if len(items) == 1 else 's'}"


def _size(contents: Contents | None) -> str:
    match contents:
        case StringKey(value):
            return f"a string of {len(value)} bytes"
        case HashKey(fields):
            return f"a hash of {_count(list(fields), 'field')}"
        case SetKey(members):
            return f"a set of {_count(list(members), 'member')}"
        case SortedSetKey(scores):
            return f"a sorted set of {_count(list(scores), 'member')}"
        case ListKey(items):
            return f"a list of {_count(list(items), 'item')}"
    return "nothing"


def _shown(value: bytes) -> str:
    text = value.decode(errors="backslashreplace")
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")


def _name(key: bytes) -> str:
    return key.decode(errors="backslashreplace")


# -- reading Redis ------------------------------------------------------------------------------


async def purchase_state_keys(redis: Redis, program_id: int) -> list[bytes]:
    """The program's purchase state: every key of its hash tag but the command side's snapshots
    (``{p:<id>}:aggregate:*``: the program's and its orders' aggregates, the open pay bills; and
    ``{p:<id>}:aggregate``, the program's snapshot as it was named before snapshots were keyed by
    their log, still in a Redis of that time)."""
    snapshots = aggregate_snapshot(program_key(program_id), "").encode()
    return [
        k
        async for k in redis.scan_iter(match=program_keys_pattern(program_id), count=SCAN_COUNT)
        if not k.startswith(snapshots) and k != snapshots.removesuffix(b":")
    ]


async def hash_purchase_state(redis: Redis, program_id: int) -> tuple[KeyHashes, dict[bytes, Contents]]:
    """The hashes of the program's purchase state in Redis now, and its contents. Each key is read
    whole, but not all at one moment: a decision made meanwhile may show in some keys only
    (projections/rebuild_inventory.py reads under WATCH where that matters)."""
    contents = await read_contents(redis, await purchase_state_keys(redis, program_id))
    return KeyHashes.of(contents), contents


async def read_contents(redis: Redis, keys: Iterable[bytes]) -> dict[bytes, Contents]:
    """The contents of those of the keys that exist, read with pipelines: one for their types, one
    for their values (a program's keys share a slot, so each pipeline goes to one node of a
    cluster). A key gone since it was named is left out, as Redis keeps no empty hash or set."""
    found: dict[bytes, Contents] = {}
    pending = list(keys)
    for _ in range(READ_ROUNDS):
        retyped: list[bytes] = []
        for start in range(0, len(pending), READ_BATCH):
            batch = pending[start : start + READ_BATCH]
            async with redis.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.type(key)
                kinds = [_text(kind) for kind in await pipe.execute()]
                for key, kind in zip(batch, kinds, strict=True):
                    _queue_read(pipe, key, kind)
                replies = iter(await pipe.execute(raise_on_error=False))
            for key, kind in zip(batch, kinds, strict=True):
                if kind == "none":
                    continue
                reply = next(replies)
                if isinstance(reply, ResponseError):
                    retyped.append(key)  # WRONGTYPE: deleted and written again as another type
                elif (contents := _contents(kind, reply)) is not None:
                    found[key] = contents
        if not retyped:
            return found
        pending = retyped
    raise RuntimeError(f"keys changed type during {READ_ROUNDS} reads, e.g. {_name(pending[0])}")


def _text(kind: bytes | str) -> str:
    return kind.decode() if isinstance(kind, bytes) else kind


def _queue_read(pipe: Pipeline, key: bytes, kind: str) -> None:
    match kind:
        case "none":
            pass
        case "string":
            pipe.get(key)
        case "hash":
            pipe.hgetall(key)
        case "set":
            pipe.smembers(key)
        case "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        case "list":
            pipe.lrange(key, 0, -1)
        case _:
            raise ValueError(f"{_name(key)} is a {kind}, which has no rendering here")


def _contents(kind: str, reply: Any) -> Contents | None:
    """The contents of a read's reply; None for a key gone meanwhile (no value, or an empty one)."""
    if kind == "string":
        return None if reply is None else StringKey(bytes(reply))
    if not reply:
        return None
    match kind:
        case "hash":
            return HashKey(dict(reply))
        case "set":
            return SetKey(frozenset(reply))
        case "zset":
            return SortedSetKey({member: float(score) for member, score in reply})
        case _:
            return ListKey(tuple(reply))

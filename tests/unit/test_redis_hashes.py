"""The canonical rendering of Redis keys (projections/redis_hashes.py): equal contents hash equal
whatever wrote them, and different contents never do."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from projections.redis_hashes import (
    Contents,
    HashKey,
    KeyHashes,
    ListKey,
    SetKey,
    SortedSetKey,
    StringKey,
    differences,
    key_digest,
    rendering,
)

NAME = b"{p:1}:remaining"
parts = st.lists(st.binary(max_size=6), max_size=6)
fields = st.dictionaries(st.binary(max_size=4), st.binary(max_size=4), max_size=8)


@given(fields, st.randoms())
def test_a_hash_hashes_equal_whatever_the_order_of_its_fields(pairs, rnd: random.Random):
    shuffled = list(pairs.items())
    rnd.shuffle(shuffled)

    assert key_digest(NAME, HashKey(dict(shuffled))) == key_digest(NAME, HashKey(pairs))


def test_a_decision_hashes_equal_whatever_order_its_encoder_wrote_its_keys_in():
    decision = {"o": "42", "u": "7", "st": "3", "status": "held", "t": [["11", "5", 1, 2, "80.00", ""]], "pay": 1}
    by_python = json.dumps(decision, separators=(",", ":")).encode()
    by_cjson = json.dumps(dict(reversed(list(decision.items())))).encode()

    assert key_digest(NAME, StringKey(by_cjson)) == key_digest(NAME, StringKey(by_python))


def test_a_string_that_is_no_json_object_is_hashed_as_it_is():
    assert rendering(StringKey(b"05")) != rendering(StringKey(b"5"))
    assert rendering(StringKey(b"[1, 2]")) != rendering(StringKey(b"[1,2]"))
    assert rendering(StringKey(b"{not json")) != rendering(StringKey(b"{not  json"))


def test_a_score_hashes_equal_as_an_integer_or_a_double():
    assert rendering(SortedSetKey({b"7": 100_003})) == rendering(SortedSetKey({b"7": 100_003.0}))
    assert rendering(SortedSetKey({b"7": 100_003})) != rendering(SortedSetKey({b"7": 100_004}))


def test_a_set_hashes_equal_whatever_the_order_of_its_members_and_a_list_does_not():
    assert rendering(SetKey(frozenset([b"a", b"b"]))) == rendering(SetKey(frozenset([b"b", b"a"])))
    assert rendering(ListKey((b"a", b"b"))) != rendering(ListKey((b"b", b"a")))


def test_the_type_is_hashed_when_the_contents_render_alike():
    renderings = {
        rendering(HashKey({b"a": b"b"})),
        rendering(ListKey((b"a", b"b"))),
        rendering(SortedSetKey({b"a": 1})),
        rendering(ListKey((b"a", b"1.0"))),
        rendering(SetKey(frozenset([b"a"]))),
        rendering(StringKey(b"a")),
    }

    assert len(renderings) == 6


@given(parts, parts)
def test_two_lists_of_parts_render_alike_only_when_they_are_equal(a, b):
    assert (rendering(ListKey(tuple(a))) == rendering(ListKey(tuple(b)))) == (a == b)


def test_the_name_is_hashed():
    assert key_digest(b"{p:1}:account:5", StringKey(b"2")) != key_digest(b"{p:1}:account:6", StringKey(b"2"))


def test_the_hashes_of_a_set_of_keys_name_the_key_that_differs_when_one_does():
    redis: dict[bytes, Contents] = {NAME: HashKey({b"5": b"9", b"6": b"3"}), b"{p:1}:hold-sequence": StringKey(b"4")}
    log: dict[bytes, Contents] = {NAME: HashKey({b"5": b"10", b"6": b"3"}), b"{p:1}:hold-sequence": StringKey(b"4")}

    held, described = KeyHashes.of(redis), KeyHashes.of(log)

    assert held.digest != described.digest and held.count == described.count == 2
    assert held.differing(described) == ["{p:1}:remaining"]
    [difference] = differences(redis, log, held.differing(described))
    assert str(difference) == ("{p:1}:remaining: 1 field with another value, e.g. '5': '9' in Redis, '10' from the log")


def test_a_key_of_one_side_only_is_named_with_its_size():
    log = {b"{p:1}:available:5": SortedSetKey({b"11": 100_001, b"12": 100_002})}

    [difference] = differences({}, log, KeyHashes.of({}).differing(KeyHashes.of(log)))

    assert str(difference) == "{p:1}:available:5: not in Redis (a sorted set of 2 members from the log)"


def test_a_decision_that_differs_names_the_field():
    redis = {b"{p:1}:order:42": StringKey(b'{"status":"held","o":"42"}')}
    log = {b"{p:1}:order:42": StringKey(b'{"o":"42","status":"sold"}')}

    [difference] = differences(redis, log, ["{p:1}:order:42"])

    assert difference.what == "1 field with another value, e.g. 'status': '\"held\"' in Redis, '\"sold\"' from the log"


def test_equal_keys_hash_equal_as_a_set():
    keys: dict[bytes, Contents] = {
        NAME: HashKey({b"5": b"9"}),
        b"{p:1}:inventory:applied": SetKey(frozenset([b"e1", b"e2"])),
    }

    assert KeyHashes.of(keys) == KeyHashes.of(dict(reversed(list(keys.items()))))

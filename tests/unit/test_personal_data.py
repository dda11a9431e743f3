import base64
import logging
import os
import pickle

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.personal_data import (
    DataKey,
    MasterKeyring,
    PersonalDataShredded,
    Secret,
    StoredDataKeys,
    UnknownKey,
    UnreadableToken,
    UserDataKeys,
)

USER, OTHER_USER = 4_200_000_000_001, 4_200_000_000_002
MOBILE = "13812345678"
user_ids = st.integers(min_value=1, max_value=(1 << 63) - 1)
personal_values = st.text(max_size=200)


def master_keyring(*ids: str, current: str | None = None) -> MasterKeyring:
    ids = ids or ("m1",)
    return MasterKeyring({i: os.urandom(32) for i in ids}, current or ids[-1])


def registered(keyring: MasterKeyring, user_id: int = USER) -> StoredDataKeys:
    """What registration stores: one fresh data key, wrapped under the current master key."""
    return StoredDataKeys(user_id, (keyring.wrap(user_id, DataKey.generate()),))


def payload(token: str) -> bytes:
    part = token.rsplit(".", 1)[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@settings(max_examples=50)
@given(user_id=user_ids, value=personal_values)
def test_a_value_reads_back_for_its_user_and_field(user_id, value):
    keyring = master_keyring()
    keys = keyring.open(registered(keyring, user_id))

    token = keys.encrypt("mobile", Secret(value))

    assert keys.decrypt("mobile", token) == Secret(value)


def test_a_token_is_compact_and_names_its_format_and_data_key():
    keyring = master_keyring()
    stored = registered(keyring)

    token = keyring.open(stored).encrypt("mobile", Secret(MOBILE))

    kind, key_id, _ = token.split(".")
    assert (kind, key_id) == ("pd1", stored.wrapped[0].key_id)
    assert MOBILE not in token
    assert len(payload(token)) == 12 + len(MOBILE) + 16  # nonce, ciphertext, tag


def test_the_same_value_encrypts_to_different_tokens_each_time():
    keys = (keyring := master_keyring()).open(registered(keyring))

    assert keys.encrypt("mobile", Secret(MOBILE)) != keys.encrypt("mobile", Secret(MOBILE))


def test_a_token_cannot_be_read_as_another_field_of_its_user():
    keys = (keyring := master_keyring()).open(registered(keyring))
    token = keys.encrypt("mobile", Secret(MOBILE))

    with pytest.raises(UnreadableToken):
        keys.decrypt("email", token)


def test_a_token_cannot_be_moved_to_another_user_even_under_the_same_data_key():
    data_key = DataKey.generate()
    mine = UserDataKeys(USER, [data_key])
    theirs = UserDataKeys(OTHER_USER, [data_key])

    with pytest.raises(UnreadableToken):
        theirs.decrypt("mobile", mine.encrypt("mobile", Secret(MOBILE)))


@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_altered_byte_of_a_token_is_refused(position, bit):
    keys = (keyring := master_keyring()).open(registered(keyring))
    token = keys.encrypt("name", Secret("张三"))
    kind, key_id, _ = token.split(".")
    raw = bytearray(payload(token))
    raw[position % len(raw)] ^= 1 << bit
    altered = f"{kind}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"

    with pytest.raises(UnreadableToken):
        keys.decrypt("name", altered)


@pytest.mark.parametrize(
    "shape", ["", "pd1", "pd1.{id}.", "dk1.{id}.AAAA", "pd1.bad id.AAAA", "pd1.{id}.!!!!", "pd1.{id}.a.b"]
)
def test_a_malformed_token_is_refused_as_unreadable(shape):
    keyring = master_keyring()
    stored = registered(keyring)

    with pytest.raises(UnreadableToken):
        keyring.open(stored).decrypt("mobile", shape.format(id=stored.wrapped[0].key_id))


def test_a_token_naming_a_data_key_the_user_does_not_hold_is_refused_as_unknown():
    keyring = master_keyring()
    old = keyring.open(registered(keyring)).encrypt("mobile", Secret(MOBILE))

    with pytest.raises(UnknownKey):
        keyring.open(registered(keyring)).decrypt("mobile", old)


def test_a_new_data_key_encrypts_while_values_under_the_old_one_still_read():
    first, second = DataKey.generate(), DataKey.generate()
    before = UserDataKeys(USER, [first]).encrypt("mobile", Secret(MOBILE))
    both = UserDataKeys(USER, [first, second])

    after = both.encrypt("mobile", Secret(MOBILE))

    assert after.split(".")[1] == second.key_id
    assert both.decrypt("mobile", before) == both.decrypt("mobile", after) == Secret(MOBILE)


def test_a_wrapped_data_key_names_its_master_key_and_hides_the_key():
    keyring = master_keyring("m1")
    data_key = DataKey.generate()

    wrapped = keyring.wrap(USER, data_key)

    assert wrapped.master_key_id == "m1" and wrapped.token.startswith("dk1.m1.")
    assert data_key.material not in payload(wrapped.token)
    assert keyring.unwrap(USER, wrapped) == data_key


def test_a_wrapped_data_key_cannot_be_moved_to_another_user():
    keyring = master_keyring()
    wrapped = keyring.wrap(USER, DataKey.generate())

    with pytest.raises(UnreadableToken):
        keyring.unwrap(OTHER_USER, wrapped)


def test_after_a_master_key_rotation_old_wraps_open_and_rewrapping_moves_them_to_the_current_key():
    old_material, new_material = os.urandom(32), os.urandom(32)
    before = MasterKeyring({"m1": old_material}, "m1")
    stored = registered(before)
    token = before.open(stored).encrypt("email", Secret("fan@example.com"))
    rotated = MasterKeyring({"m1": old_material, "m2": new_material}, "m2")

    assert rotated.needs_rewrap(stored.wrapped[0])
    rewrapped = rotated.rewrap(stored)

    assert [w.master_key_id for w in rewrapped.wrapped] == ["m2"]
    assert not rotated.needs_rewrap(rewrapped.wrapped[0])
    retired = MasterKeyring({"m2": new_material}, "m2")
    assert retired.open(rewrapped).decrypt("email", token) == Secret("fan@example.com")
    with pytest.raises(UnknownKey):
        retired.open(stored)


def test_decrypting_after_the_data_key_is_destroyed_raises_shredded():
    keyring = master_keyring()
    stored = registered(keyring)
    token = keyring.open(stored).encrypt("id-number", Secret("11010519491231002X"))

    shredded = keyring.open(stored.shred())

    with pytest.raises(PersonalDataShredded):
        shredded.decrypt("id-number", token)
    with pytest.raises(PersonalDataShredded):
        shredded.encrypt("id-number", Secret("11010519491231002X"))


def test_after_shredding_no_master_key_opens_a_value_of_that_user():
    keys = {"m1": os.urandom(32), "m2": os.urandom(32)}
    keyring = MasterKeyring(keys, "m2")
    stored = registered(keyring)
    token = keyring.open(stored).encrypt("mobile", Secret(MOBILE))
    raw = payload(token)

    assert stored.shred().wrapped == ()
    for master in keys.values():
        with pytest.raises(InvalidTag):
            AESGCM(master).decrypt(raw[:12], raw[12:], f"pd1.{token.split('.')[1]}|user:{USER}:mobile".encode())


def test_shredding_one_user_leaves_the_others_readable():
    keyring = master_keyring()
    mine, theirs = registered(keyring, USER), registered(keyring, OTHER_USER)
    their_token = keyring.open(theirs).encrypt("mobile", Secret("13900000000"))

    mine.shred()

    assert keyring.open(theirs).decrypt("mobile", their_token) == Secret("13900000000")


def test_a_secret_never_shows_its_value_in_repr_str_format_logs_or_pickles(caplog):
    secret = Secret(MOBILE)

    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("registering %s %r", secret, secret)
        logging.getLogger("test").info(f"registering {secret} {secret!r} {secret:>20}")

    shown = [repr(secret), str(secret), f"{secret}", repr([secret]), repr({"mobile": secret}), caplog.text]
    assert all(MOBILE not in text for text in shown)
    assert secret.reveal() == MOBILE
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


def test_keys_never_show_their_material_in_repr():
    keyring = master_keyring("m1")
    data_key = DataKey.generate()
    keys = UserDataKeys(USER, [data_key])

    shown = repr(keyring) + repr(data_key) + repr(keys)

    assert data_key.material.hex() not in shown and str(data_key.material) not in shown
    assert "m1" in repr(keyring) and data_key.key_id in repr(keys)

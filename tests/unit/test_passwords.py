"""Passwords are stored as argon2id hashes with the parameters of the settings."""

from __future__ import annotations

import asyncio

from infra.passwords import Passwords
from infra.personal_data import Secret
from infra.settings import PasswordSettings

PASSWORDS = Passwords(PasswordSettings())


def test_a_hash_is_argon2id_with_the_settings_parameters():
    stored = PASSWORDS.hash_password(Secret("correct horse"))

    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in stored


def test_the_right_password_verifies():
    stored = PASSWORDS.hash_password(Secret("correct horse"))

    assert PASSWORDS.verify_password(stored, Secret("correct horse"))


def test_a_wrong_password_is_false_and_does_not_raise():
    stored = PASSWORDS.hash_password(Secret("correct horse"))

    assert not PASSWORDS.verify_password(stored, Secret("correct horsf"))


def test_a_stored_value_that_is_not_an_argon2_hash_is_false_and_does_not_raise():
    assert not PASSWORDS.verify_password("not a hash", Secret("correct horse"))
    assert not PASSWORDS.verify_password("", Secret(""))


def test_two_hashes_of_one_password_differ_by_their_salt():
    assert PASSWORDS.hash_password(Secret("same")) != PASSWORDS.hash_password(Secret("same"))


def test_a_hash_needs_rehash_when_the_settings_were_raised():
    stored = PASSWORDS.hash_password(Secret("correct horse"))
    raised = Passwords(PasswordSettings(time_cost=3))

    assert not PASSWORDS.needs_rehash(stored)
    assert raised.needs_rehash(stored)
    assert raised.verify_password(stored, Secret("correct horse"))


def test_the_async_forms_hash_and_verify_off_the_event_loop():
    async def hash_then_verify() -> tuple[bool, bool]:
        stored = await PASSWORDS.hash_password_async(Secret("correct horse"))
        return (
            await PASSWORDS.verify_password_async(stored, Secret("correct horse")),
            await PASSWORDS.verify_password_async(stored, Secret("wrong")),
        )

    assert asyncio.run(hash_then_verify()) == (True, False)

"""Access tokens: HS256 JWTs that verify only with our key, our algorithm and within their life."""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr

from infra.settings import TokenSettings
from infra.tokens import ALGORITHM, AccessTokens, ExpiredAccessToken, InvalidAccessToken

SETTINGS = TokenSettings(access_token_ttl_s=600, leeway_s=5)
TOKENS = AccessTokens(SETTINGS)


def other_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_an_issued_token_verifies_to_its_user_and_life():
    issued = TOKENS.issue(7_312_345_678_901_234_567)

    claims = TOKENS.verify(issued.token)

    assert claims == issued.claims
    assert claims.user_id == 7_312_345_678_901_234_567
    assert issued.expires_in_s == 600


def test_the_subject_is_the_user_id_as_a_string_with_a_token_id():
    payload = jwt.decode(TOKENS.issue(42).token, options={"verify_signature": False})

    assert payload["sub"] == "42"
    assert payload["jti"] and isinstance(payload["jti"], str)
    assert payload["exp"] - payload["iat"] == 600


def test_two_tokens_of_one_user_have_different_ids():
    assert TOKENS.issue(42).claims.token_id != TOKENS.issue(42).claims.token_id


def test_a_token_past_its_expiry_and_the_leeway_is_expired():
    issued = TOKENS.issue(42, now=datetime.now(UTC) - timedelta(seconds=606))

    with pytest.raises(ExpiredAccessToken):
        TOKENS.verify(issued.token)


def test_a_token_expired_within_the_leeway_still_verifies():
    issued = TOKENS.issue(42, now=datetime.now(UTC) - timedelta(seconds=602))

    assert TOKENS.verify(issued.token).user_id == 42


def test_a_token_signed_with_another_key_is_invalid():
    forged = AccessTokens(TokenSettings(signing_key=SecretStr(other_key()))).issue(42).token

    with pytest.raises(InvalidAccessToken) as refused:
        TOKENS.verify(forged)

    assert not isinstance(refused.value, ExpiredAccessToken)


def test_a_token_with_an_altered_payload_is_invalid():
    header, _, signature = TOKENS.issue(42).token.split(".")
    other_payload = TOKENS.issue(43).token.split(".")[1]

    with pytest.raises(InvalidAccessToken):
        TOKENS.verify(f"{header}.{other_payload}.{signature}")


@pytest.mark.filterwarnings("ignore:The HMAC key is 32 bytes long")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_a_token_of_another_algorithm_is_invalid_even_with_our_key(algorithm: str):
    now = datetime.now(UTC)
    payload = {"sub": "42", "jti": "x", "iat": now, "exp": now + timedelta(minutes=5)}
    token = jwt.encode(payload, SETTINGS.signing_key_bytes(), algorithm=algorithm)

    with pytest.raises(InvalidAccessToken):
        TOKENS.verify(token)


def test_an_unsigned_token_is_invalid():
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "42", "jti": "x", "iat": now, "exp": now + timedelta(minutes=5)}, "", algorithm="none")

    with pytest.raises(InvalidAccessToken):
        TOKENS.verify(token)


@pytest.mark.parametrize("missing", ["sub", "jti", "iat", "exp"])
def test_a_token_lacking_a_claim_is_invalid(missing: str):
    now = datetime.now(UTC)
    payload = {"sub": "42", "jti": "x", "iat": now, "exp": now + timedelta(minutes=5)}
    del payload[missing]
    token = jwt.encode(payload, SETTINGS.signing_key_bytes(), algorithm=ALGORITHM)

    with pytest.raises(InvalidAccessToken):
        TOKENS.verify(token)


def test_a_token_whose_subject_is_not_a_user_id_is_invalid():
    now = datetime.now(UTC)
    payload = {"sub": "admin", "jti": "x", "iat": now, "exp": now + timedelta(minutes=5)}
    token = jwt.encode(payload, SETTINGS.signing_key_bytes(), algorithm=ALGORITHM)

    with pytest.raises(InvalidAccessToken):
        TOKENS.verify(token)


def test_garbage_is_invalid():
    with pytest.raises(InvalidAccessToken):
        TOKENS.verify("not.a.token")


def test_the_signing_key_does_not_show_in_a_repr():
    assert SETTINGS.signing_key.get_secret_value() not in repr(TOKENS)
    assert SETTINGS.signing_key.get_secret_value() not in repr(SETTINGS)


def test_a_remembered_token_is_refused_once_it_expires():
    tokens = AccessTokens(TokenSettings(access_token_ttl_s=60, leeway_s=0))
    issued = tokens.issue(42, now=datetime.now(UTC) - timedelta(seconds=59))
    assert tokens.verify(issued.token).user_id == 42  # verified and remembered

    time.sleep(max(0.0, issued.claims.expires_at.timestamp() - time.time()) + 0.05)

    with pytest.raises(ExpiredAccessToken):
        tokens.verify(issued.token)


def test_only_genuine_tokens_are_remembered_and_the_memory_is_bounded():
    tokens = AccessTokens(TokenSettings(access_token_ttl_s=600, verified_cache_entries=3))
    forged = AccessTokens(TokenSettings(signing_key=SecretStr(other_key()))).issue(42).token
    for _ in range(2):
        with pytest.raises(InvalidAccessToken):
            tokens.verify(forged)
    issued = [tokens.issue(user_id) for user_id in range(10)]

    for token in issued:
        assert tokens.verify(token.token) == token.claims
    for token in issued:  # the second time, from memory for the last three: the same claims
        assert tokens.verify(token.token) == token.claims

    assert len(tokens._verified) == 3
    assert forged not in tokens._verified

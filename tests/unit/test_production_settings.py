"""Outside development, the settings refuse the secrets everyone can read in this repository."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from infra.settings import Settings


def a_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_development_secrets_are_refused_when_the_environment_is_production():
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production")

    assert "DAMAI_API__ADMIN_TOKEN" in str(refused.value)
    assert "DAMAI_SECURITY__" in str(refused.value)
    assert "DAMAI_TOKENS__SIGNING_KEY" in str(refused.value)


def test_production_starts_when_every_secret_is_its_own():
    key_id = "k1"
    settings = Settings.model_validate(
        {
            "environment": "production",
            "api": {"admin_token": "a-long-random-operator-token"},
            "security": {"blind_index_key": a_key(), "master_keys": {key_id: a_key()}, "current_master_key_id": key_id},
            "tokens": {"signing_key": a_key()},
        }
    )

    assert settings.environment == "production"


def test_development_keeps_its_defaults():
    assert Settings(environment="development").api.admin_token

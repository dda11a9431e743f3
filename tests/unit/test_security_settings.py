import base64
import os

import pytest
from pydantic import ValidationError

from infra.personal_data import MasterKeyring
from infra.settings import SecuritySettings, Settings


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_keys_of_a_deployment_are_not_the_development_ones():
    security = SecuritySettings.model_validate(
        {
            "blind_index_key": b64(os.urandom(32)),
            "master_keys": {"2027-01": b64(os.urandom(32))},
            "current_master_key_id": "2027-01",
        }
    )

    assert not security.uses_development_keys()
    assert MasterKeyring.from_settings(security).current == "2027-01"


def test_master_keys_come_from_the_environment_with_their_ids(monkeypatch):
    old, new = b64(os.urandom(32)), b64(os.urandom(32))
    monkeypatch.setenv("DAMAI_SECURITY__MASTER_KEYS", f'{{"k1": "{old}", "k2": "{new}"}}')
    monkeypatch.setenv("DAMAI_SECURITY__CURRENT_MASTER_KEY_ID", "k2")

    security = Settings().security

    assert security.master_key_bytes() == {"k1": base64.b64decode(old), "k2": base64.b64decode(new)}
    assert MasterKeyring.from_settings(security).current == "k2"


@pytest.mark.parametrize(
    "fields",
    [
        {"blind_index_key": b64(os.urandom(16))},
        {"blind_index_key": "not base64!"},
        {"master_keys": {"m1": b64(os.urandom(16))}, "current_master_key_id": "m1"},
        {"master_keys": {"m.1": b64(os.urandom(32))}, "current_master_key_id": "m.1"},
        {"current_master_key_id": "absent"},
    ],
)
def test_unusable_keys_are_refused_when_the_settings_load(fields):
    with pytest.raises(ValidationError):
        SecuritySettings(**fields)


def test_the_keys_never_show_in_the_settings_repr():
    security = SecuritySettings()

    shown = repr(security) + repr(Settings())

    assert security.blind_index_key.get_secret_value() not in shown
    assert all(key.get_secret_value() not in shown for key in security.master_keys.values())

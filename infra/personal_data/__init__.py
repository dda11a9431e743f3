"""Personal data protection: field encryption under per-user data keys, master keys, the blind index.

docs/personal-data.md describes the token format, key rotation and crypto-shredding.
"""

from infra.personal_data.blind_index import BlindIndex
from infra.personal_data.data_keys import (
    DataKey,
    DataKeyStore,
    MasterKeyring,
    StoredDataKeys,
    UserDataKeys,
    WrappedDataKey,
    value_binding,
)
from infra.personal_data.errors import PersonalDataError, PersonalDataShredded, UnknownKey, UnreadableToken
from infra.personal_data.secret import Secret

__all__ = [
    "BlindIndex",
    "DataKey",
    "DataKeyStore",
    "MasterKeyring",
    "PersonalDataError",
    "PersonalDataShredded",
    "Secret",
    "StoredDataKeys",
    "UnknownKey",
    "UnreadableToken",
    "UserDataKeys",
    "WrappedDataKey",
    "value_binding",
]

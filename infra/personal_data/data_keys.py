"""Per-user data keys, wrapped under master keys (envelope encryption), and their shredding.

Each user gets a random AES-256 data key; every personal value of that user is encrypted under
it (``UserDataKeys``). The data key itself is stored only wrapped — encrypted under the current
master key from settings, bound to its user — so rotating a master key rewraps a few bytes per
user and never touches the events. Destroying a user's wrapped data keys (``StoredDataKeys.shred``)
makes every value under them unreadable, in rows and in the immutable log alike.

Storage is a port (``DataKeyStore``); its adapter comes with the User aggregate.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from infra.personal_data.errors import PersonalDataShredded, UnknownKey
from infra.personal_data.secret import Secret
from infra.personal_data.tokens import KEY_BYTES, key_id_of, open_sealed, seal
from infra.settings import SecuritySettings

WRAPPED_KEY = "dk1"
PERSONAL_VALUE = "pd1"
DATA_KEY_ID_BYTES = 6  # 8 characters: ids only need to differ among one user's keys


@dataclass(frozen=True)
class DataKey:
    """One user's data key in clear: lives in memory only while a command or projector needs it."""

    key_id: str
    material: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> DataKey:
        key_id = base64.urlsafe_b64encode(os.urandom(DATA_KEY_ID_BYTES)).decode("ascii")
        return cls(key_id, os.urandom(KEY_BYTES))


@dataclass(frozen=True)
class WrappedDataKey:
    """A data key as stored: its id (named by every value under it) and the key sealed under a
    master key (``dk1.<master key id>.<...>``), bound to ``user:<id>:data-key:<key id>``."""

    key_id: str
    token: str

    @property
    def master_key_id(self) -> str:
        return key_id_of(WRAPPED_KEY, self.token)


@dataclass(frozen=True)
class StoredDataKeys:
    """What the store holds for one user: the wrapped keys (the last one current), or a tombstone
    once they were destroyed, so a reader can tell "shredded" from "never had a key"."""

    user_id: int
    wrapped: tuple[WrappedDataKey, ...] = ()
    shredded: bool = False

    def shred(self) -> StoredDataKeys:
        """The state after destroying every data key of the user: no key material, a tombstone."""
        return StoredDataKeys(self.user_id, (), shredded=True)


class DataKeyStore(Protocol):
    """Where wrapped data keys live: outside the log, since they must be destroyable."""

    async def create(self, user_id: int, wrapped: WrappedDataKey) -> bool:
        """Store a user's first data key; False (and nothing changed) if the user has or had one."""
        ...

    async def load(self, user_id: int) -> StoredDataKeys | None:
        """The user's wrapped keys or tombstone; None for a user who never had a key."""
        ...

    async def replace(self, stored: StoredDataKeys) -> None:
        """Store rewrapped keys (master key rotation) or a new current key; never revives a tombstone."""
        ...

    async def shred(self, user_id: int) -> None:
        """Destroy every data key of the user for good (backups included), keeping the tombstone."""
        ...


class MasterKeyring:
    """The master keys from settings: wraps with the current one, unwraps with the one a token names."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current master key id is not among the master keys")
        for material in keys.values():
            if len(material) != KEY_BYTES:
                raise ValueError(f"a master key is {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self.current = current

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> MasterKeyring:
        return cls(security.master_key_bytes(), security.current_master_key_id)

    def __repr__(self) -> str:
        return f"MasterKeyring(ids={sorted(self._keys)}, current={self.current!r})"

    def wrap(self, user_id: int, data_key: DataKey) -> WrappedDataKey:
        token = seal(
            WRAPPED_KEY,
            self.current,
            self._keys[self.current],
            data_key.material,
            _key_binding(user_id, data_key.key_id),
        )
        return WrappedDataKey(data_key.key_id, token)

    def unwrap(self, user_id: int, wrapped: WrappedDataKey) -> DataKey:
        material = open_sealed(
            WRAPPED_KEY, self._master(wrapped.master_key_id), wrapped.token, _key_binding(user_id, wrapped.key_id)
        )
        return DataKey(wrapped.key_id, material)

    def needs_rewrap(self, wrapped: WrappedDataKey) -> bool:
        return wrapped.master_key_id != self.current

    def rewrap(self, stored: StoredDataKeys) -> StoredDataKeys:
        """The same data keys wrapped under the current master key (after a rotation)."""
        rewrapped = tuple(self.wrap(stored.user_id, self.unwrap(stored.user_id, w)) for w in stored.wrapped)
        return StoredDataKeys(stored.user_id, rewrapped, stored.shredded)

    def open(self, stored: StoredDataKeys) -> UserDataKeys:
        """The user's data keys in clear, ready to encrypt and decrypt that user's values."""
        if stored.shredded:
            return UserDataKeys(stored.user_id, [], shredded=True)
        return UserDataKeys(stored.user_id, [self.unwrap(stored.user_id, w) for w in stored.wrapped])

    def _master(self, key_id: str) -> bytes:
        if key_id not in self._keys:
            raise UnknownKey(f"master key {key_id!r} is not configured")
        return self._keys[key_id]


class UserDataKeys:
    """One user's data keys in clear: encrypts under the current (last) one, decrypts with the one
    a token names. Every value is bound to ``user:<id>:<field>``."""

    def __init__(self, user_id: int, keys: Sequence[DataKey], *, shredded: bool = False) -> None:
        if not keys and not shredded:
            raise ValueError("a user who was not shredded has at least one data key")
        self.user_id = user_id
        self.shredded = shredded
        self._keys = {k.key_id: k for k in keys}
        self._current = keys[-1] if keys else None

    def __repr__(self) -> str:
        return f"UserDataKeys(user_id={self.user_id}, key_ids={sorted(self._keys)}, shredded={self.shredded})"

    def encrypt(self, field_name: str, value: Secret) -> str:
        """``pd1.<data key id>.<...>``: ``value`` sealed under the current key, bound to its user and field."""
        if self._current is None:
            raise PersonalDataShredded(f"user {self.user_id}'s data key was destroyed")
        return seal(
            PERSONAL_VALUE,
            self._current.key_id,
            self._current.material,
            value.reveal().encode("utf-8"),
            value_binding(self.user_id, field_name),
        )

    def decrypt(self, field_name: str, token: str) -> Secret:
        """The clear value of a token of this user's ``field_name``.

        ``PersonalDataShredded`` once the user's keys were destroyed; ``UnknownKey`` for a key the
        user does not hold; ``UnreadableToken`` for an altered token or one of another user or field.
        """
        key_id = key_id_of(PERSONAL_VALUE, token)
        if self.shredded:
            raise PersonalDataShredded(f"user {self.user_id}'s data key was destroyed")
        if key_id not in self._keys:
            raise UnknownKey(f"user {self.user_id} holds no data key {key_id!r}")
        plaintext = open_sealed(
            PERSONAL_VALUE, self._keys[key_id].material, token, value_binding(self.user_id, field_name)
        )
        return Secret(plaintext.decode("utf-8"))


def value_binding(user_id: int, field_name: str) -> str:
    """What a personal value is bound to: its owner and field (``user:42:mobile``,
    ``user:42:ticket-buyer:7:id-number``)."""
    return f"user:{user_id}:{field_name}"


def _key_binding(user_id: int, key_id: str) -> str:
    return f"user:{user_id}:data-key:{key_id}"

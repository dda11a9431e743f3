"""The per-user data keys as the handlers and the read side use them: create a new user's key,
open a user's key to seal or reveal values, shred it (docs/personal-data.md)."""

from __future__ import annotations

from pydantic import SecretStr

from aggregates.errors import NotFound
from infra.personal_data.data_keys import DataKey, DataKeyStore, MasterKeyring, UserDataKeys
from infra.personal_data.secret import Secret


class OpenUserKeys:
    """One user's data keys in clear, for one command or one query."""

    def __init__(self, keys: UserDataKeys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"OpenUserKeys({self._keys!r})"

    @property
    def shredded(self) -> bool:
        return self._keys.shredded

    def seal(self, field_name: str, value: SecretStr) -> str:
        return self._keys.encrypt(field_name, Secret(value.get_secret_value()))

    def reveal(self, field_name: str, token: str) -> str:
        """The clear value; ``PersonalDataShredded`` once the user's key is destroyed."""
        return self._keys.decrypt(field_name, token).reveal()


class PersonalDataVault:
    """``commands.user.PersonalData`` over a ``DataKeyStore`` and the master keys."""

    def __init__(self, keyring: MasterKeyring, store: DataKeyStore) -> None:
        self._keyring = keyring
        self._store = store

    async def create_keys(self, user_id: int) -> OpenUserKeys:
        key = DataKey.generate()
        if not await self._store.create(user_id, self._keyring.wrap(user_id, key)):
            # Ids are never reused, so a key already there is from a retried registration.
            return await self.keys_of(user_id)
        return OpenUserKeys(UserDataKeys(user_id, [key]))

    async def keys_of(self, user_id: int) -> OpenUserKeys:
        stored = await self._store.load(user_id)
        if stored is None or stored.shredded:
            raise NotFound(f"no user {user_id}", code="USER_NOT_FOUND")
        return OpenUserKeys(self._keyring.open(stored))

    async def readable_keys_of(self, user_id: int) -> OpenUserKeys | None:
        """For the read side: None when the user never had a key; shredded keys reveal nothing."""
        stored = await self._store.load(user_id)
        return None if stored is None else OpenUserKeys(self._keyring.open(stored))

    async def shred(self, user_id: int) -> None:
        await self._store.shred(user_id)


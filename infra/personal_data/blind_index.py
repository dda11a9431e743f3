"""The keyed hash (HMAC-SHA256) stored instead of a mobile, an email or an ID number, for lookups.

The one blind index of the system: the shard routing of ``user_mobile`` and ``user_email``
(``infra.postgres.routing``) and every lookup table use it. Values are normalised first
(``aggregates.identity_documents``), so ``+86 138 0013 8000`` and ``13800138000`` index alike;
each kind of value is hashed in its own domain (``mobile:``, ``email:``, ``id:<type>:``), so a
mobile and an ID number with the same characters never collide. Without the key the index
cannot be recomputed from a guessed value, which plain SHA-256 of an 11-digit mobile would allow.
"""

from __future__ import annotations

import hashlib
import hmac

from aggregates.identity_documents import normalise_email, normalise_id_number, normalise_mobile
from events.user import IdType
from infra.settings import SecuritySettings

MIN_KEY_BYTES = 32


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a blind-index key has at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> BlindIndex:
        return cls(security.blind_index_key_bytes())

    def __repr__(self) -> str:
        return "BlindIndex(key=***)"

    def mobile(self, mobile: str) -> bytes:
        return self._of("mobile", normalise_mobile(mobile))

    def email(self, email: str) -> bytes:
        return self._of("email", normalise_email(email))

    def id_number(self, id_type: IdType, number: str) -> bytes:
        """Of the document, not the bare number: a passport and a permit may share digits."""
        return self._of(f"id:{id_type.value}", normalise_id_number(number))

    def _of(self, kind: str, normal: str) -> bytes:
        return hmac.new(self._key, f"{kind}:{normal}".encode(), hashlib.sha256).digest()

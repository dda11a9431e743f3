"""The one token format: ``<kind>.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``, AES-256-GCM.

``kind`` names what is inside and the format's version (``pd1``: a personal value under a user's
data key; ``dk1``: a data key under a master key). The key id says which key opens it, so keys
rotate without a flag day. The associated data is the token's header and its *binding* (e.g.
``user:42:mobile``): the binding is not stored in the token, the reader supplies it, so a token
copied to another user or field, or given another key id, fails authentication.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.personal_data.errors import UnreadableToken

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce, random per value
TAG_BYTES = 16
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
BINDING = re.compile(r"[A-Za-z0-9_:-]{1,200}")


def seal(kind: str, key_id: str, key: bytes, plaintext: bytes, binding: str) -> str:
    """Encrypt ``plaintext`` under ``key`` into a token bound to ``binding``."""
    header = _header(kind, key_id, binding)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _associated_data(header, binding))
    return f"{header}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode('ascii')}"


def key_id_of(kind: str, token: str) -> str:
    """The id of the key that opens ``token``; ``UnreadableToken`` if it is not a ``kind`` token."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != kind or not KEY_ID.fullmatch(parts[1]):
        raise UnreadableToken(f"not a {kind} token")
    return parts[1]


def open_sealed(kind: str, key: bytes, token: str, binding: str) -> bytes:
    """The plaintext of ``token``; ``UnreadableToken`` if it was altered or is bound elsewhere."""
    key_id = key_id_of(kind, token)
    header = _header(kind, key_id, binding)
    payload = token.rsplit(".", 1)[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError) as error:
        raise UnreadableToken(f"{kind} token: payload is not base64url") from error
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise UnreadableToken(f"{kind} token: payload too short")
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(header, binding))
    except InvalidTag as error:
        raise UnreadableToken(
            f"{kind} token does not open here: altered, or bound to another owner or field"
        ) from error


def _header(kind: str, key_id: str, binding: str) -> str:
    if not KEY_ID.fullmatch(key_id):
        raise ValueError("a key id is 1-32 of A-Z a-z 0-9 _ -")
    if not BINDING.fullmatch(binding):
        raise ValueError("a binding is 1-200 of A-Z a-z 0-9 _ : -")
    return f"{kind}.{key_id}"


def _associated_data(header: str, binding: str) -> bytes:
    return f"{header}|{binding}".encode("ascii")

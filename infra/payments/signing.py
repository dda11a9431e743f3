"""Alipay's RSA2 signatures (SHA256withRSA, PKCS#1 v1.5, base64), and the PEM key files.

The string signed is every parameter but the signature itself, empty values dropped, sorted by
key (code-point order, which is ASCII order for Alipay's keys), joined as ``k=v`` with ``&``,
values as they are (not url-encoded). A notification is verified without ``sign_type`` as well:
Alipay signs its notifications before adding it. This module is the only place that knows the
rule; the adapter (``alipay.py``) and the sandbox (``sandbox.py``) both sign and verify here.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REQUEST_UNSIGNED = frozenset({"sign"})
"""Left out of the string to sign of a request and of an answer."""
NOTIFICATION_UNSIGNED = frozenset({"sign", "sign_type"})
"""Left out of the string to sign of an asynchronous notification."""

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


def signing_string(params: Mapping[str, str], unsigned: Iterable[str] = REQUEST_UNSIGNED) -> str:
    """The exact text Alipay signs for these parameters."""
    left_out = frozenset(unsigned)
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key not in left_out and params[key] != "")


def sign_text(text: str, key: rsa.RSAPrivateKey) -> str:
    """SHA256withRSA over the UTF-8 bytes of ``text``, base64."""
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_text(text: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) signs ``text``; False for anything that is not one."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey, unsigned: Iterable[str] = REQUEST_UNSIGNED) -> str:
    return sign_text(signing_string(params, unsigned), key)


def verify_params(params: Mapping[str, str], key: rsa.RSAPublicKey, unsigned: Iterable[str] = REQUEST_UNSIGNED) -> bool:
    """Whether ``params["sign"]`` signs the other parameters (False when it is missing)."""
    signature = params.get("sign", "")
    return bool(signature) and verify_text(signing_string(params, unsigned), signature, key)


class KeyFileMissing(Exception):
    """A key file named by the settings (or the sandbox's default) is not there, or is no PEM key."""


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileMissing(f"{path} holds no RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(_read_key_file(path))
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileMissing(f"{path} holds no RSA public key")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileMissing(f"key file {path} cannot be read: {exc.strerror}") from exc
    if b"-----BEGIN" not in data:
        raise KeyFileMissing(f"{path} is not a PEM key")
    return data


def ensure_key_pair(private_path: Path, public_path: Path) -> None:
    """Create a 2048-bit RSA pair in these two PEM files unless both are there.

    Two processes may start at once: a lock file in the directory makes one of them generate
    while the other waits and then finds the pair, so the two files always belong together.
    Each file appears whole (written aside, then renamed)."""
    directory = private_path.parent
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".keys.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if private_path.exists() and public_path.exists():
            return
        key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_atomically(private_path, private_pem, mode=0o600)
        _write_atomically(public_path, public_pem, mode=0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

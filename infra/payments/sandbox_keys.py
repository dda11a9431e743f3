"""Where the sandbox provider keeps its two RSA key pairs, and their creation.

``<state_dir>/sandbox-pay/`` holds the app's pair (the sandbox verifies requests with
``app_public.pem``; the adapter signs them with ``app_private.pem``) and the gateway's pair (the
sandbox signs answers and notifications with ``alipay_private.pem``; the adapter verifies them
with ``alipay_public.pem``). The Alipay settings name no key files by default, which means these.
"""

from __future__ import annotations

from pathlib import Path

from infra.payments.signing import ensure_key_pair

SANDBOX_DIR = "sandbox-pay"


def sandbox_dir(state_dir: Path) -> Path:
    return state_dir / SANDBOX_DIR


def app_private_key_path(state_dir: Path) -> Path:
    return sandbox_dir(state_dir) / "app_private.pem"


def app_public_key_path(state_dir: Path) -> Path:
    return sandbox_dir(state_dir) / "app_public.pem"


def alipay_private_key_path(state_dir: Path) -> Path:
    return sandbox_dir(state_dir) / "alipay_private.pem"


def alipay_public_key_path(state_dir: Path) -> Path:
    return sandbox_dir(state_dir) / "alipay_public.pem"


def ensure_sandbox_keys(state_dir: Path) -> None:
    """Create both pairs unless they are there (the sandbox calls this at start)."""
    ensure_key_pair(app_private_key_path(state_dir), app_public_key_path(state_dir))
    ensure_key_pair(alipay_private_key_path(state_dir), alipay_public_key_path(state_dir))

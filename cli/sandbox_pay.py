"""``damai sandbox-pay``: the local payment provider, Alipay's protocol on loopback (infra/payments/sandbox.py).

Also runs as ``python -m cli.sandbox_pay``, which is how the tests start it.
"""

from __future__ import annotations

from infra.logging import configure_logging
from infra.settings import Settings, get_settings


def serve(settings: Settings) -> None:
    """Serve the sandbox on ``payments.sandbox_host:sandbox_port`` until stopped (blocking)."""
    import uvicorn

    from infra.payments.sandbox import create_app

    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.payments.sandbox_host,
        port=settings.payments.sandbox_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    serve(get_settings())

"""The sandbox payment provider (``damai sandbox-pay``): Alipay's open API on loopback.

It speaks the protocol the Alipay adapter speaks to Alipay: ``/gateway.do`` checks each
request's RSA2 signature and app id and answers signed JSON; opening ``alipay.trade.page.pay``
shows a cashier page with a pay button; paying sends Alipay's asynchronous notification, signed
and retried like Alipay's. Tests and the demo drive the buyer's side and the faults through
``/sandbox/...`` (docs/payments.md). Trades live in memory: a restart forgets them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from commands.ports import TradeStatus
from infra.payments.alipay import PAGE_PAY
from infra.payments.alipay_wire import (
    ERROR_RESPONSE,
    INVALID_PARAMETER,
    TRADE_NOT_EXIST,
    parse_alipay_time,
    response_key,
    signed_answer,
    yuan,
)
from infra.payments.sandbox_gateway import (
    API_METHODS,
    SANDBOX_SELLER_ID,
    Sandbox,
    parse_amount,
    run_method,
    utc_now,
)
from infra.payments.sandbox_keys import (
    alipay_private_key_path,
    app_public_key_path,
    ensure_sandbox_keys,
)
from infra.payments.sandbox_notices import Faults, Notifier
from infra.payments.sandbox_trades import SandboxRefusal, SandboxTrade
from infra.payments.signing import load_private_key, load_public_key
from infra.settings import Settings

log = structlog.get_logger(__name__)


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _params(request: Request) -> dict[str, str]:
    """The query string's parameters and, for a form post, the body's (Alipay takes either)."""
    params = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8")
        params |= dict(parse_qsl(body, keep_blank_values=True))
    return params


async def gateway(request: Request) -> Response:
    sandbox = _sandbox(request)
    try:
        params = await _params(request)
    except UnicodeDecodeError:
        params = {}
    method = params.get("method", "")
    problem = sandbox.check_request(params)
    if method == PAGE_PAY:
        return _page_pay(sandbox, params, problem)
    content = problem or run_method(sandbox, method, json.loads(params["biz_content"]))
    log.info("sandbox_call", method=method, code=content["code"], sub_code=content.get("sub_code"))
    key = response_key(method) if method in API_METHODS else ERROR_RESPONSE
    return Response(signed_answer(key, content, sandbox.alipay_private), media_type="application/json;charset=utf-8")


def _page_pay(sandbox: Sandbox, params: dict[str, str], problem: dict[str, Any] | None) -> Response:
    """Open the trade the signed request describes and show its cashier page."""
    if problem is not None:
        return _error_page(problem["sub_code"], problem["sub_msg"])
    biz = json.loads(params["biz_content"])
    try:
        time_expire = parse_alipay_time(biz["time_expire"]) if biz.get("time_expire") else None
        trade = sandbox.book.open(
            out_trade_no=biz["out_trade_no"],
            amount=parse_amount(biz.get("total_amount")),
            subject=str(biz.get("subject", "")),
            notify_url=params.get("notify_url", ""),
            return_url=params.get("return_url", ""),
            time_expire=time_expire,
            now=utc_now(),
        )
    except SandboxRefusal as refusal:
        return _error_page(refusal.sub_code, refusal.sub_msg)
    except ValueError as exc:
        return _error_page("isv.invalid-parameter", str(exc))
    log.info("sandbox_trade_opened", out_trade_no=trade.out_trade_no, amount=yuan(trade.amount))
    return HTMLResponse(_cashier(trade))


def _cashier(trade: SandboxTrade) -> str:
    action = (
        f'<form method="post" action="/sandbox/trades/{quote(trade.out_trade_no, safe="")}/pay">'
        f'<button type="submit">Pay ¥{yuan(trade.amount)}</button></form>'
        if trade.status is TradeStatus.WAITING
        else f"<p>{escape(trade.status.value)}</p>"
    )
    back = f'<p><a href="{escape(trade.return_url)}">Back to the shop</a></p>' if trade.return_url else ""
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Sandbox cashier</title></head><body>'
        f"<h1>{escape(trade.subject)}</h1><p>Trade <code>{escape(trade.out_trade_no)}</code>: "
        f"¥{yuan(trade.amount)}, {escape(trade.status.value)}</p>{action}{back}</body></html>"
    )


def _error_page(sub_code: str, sub_msg: str) -> HTMLResponse:
    body = f'<!doctype html><html><head><meta charset="utf-8"></head><body><h1>{escape(sub_code)}</h1>'
    return HTMLResponse(f"{body}<p>{escape(sub_msg)}</p></body></html>", status_code=400)


def _refused(refusal: SandboxRefusal) -> JSONResponse:
    status = {TRADE_NOT_EXIST: 404, INVALID_PARAMETER: 400}.get(refusal.sub_code, 409)
    return JSONResponse({"code": refusal.sub_code, "message": refusal.sub_msg}, status_code=status)


async def pay(request: Request) -> Response:
    """The buyer pays (``amount`` in a JSON or form body: what was paid, the trade's by default)."""
    sandbox = _sandbox(request)
    from_page = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    try:
        amount = await _paid_amount(request)
        now = utc_now()
        trade = sandbox.book.pay(request.path_params["out_trade_no"], amount, now)
    except SandboxRefusal as refusal:
        return _refused(refusal)
    log.info("sandbox_trade_paid", out_trade_no=trade.out_trade_no, trade_no=trade.trade_no, amount=yuan(trade.amount))
    sandbox.notify(trade, now)
    return HTMLResponse(_cashier(trade)) if from_page else JSONResponse(trade.as_json())


async def _paid_amount(request: Request) -> Decimal | None:
    body = await request.body()
    if not body:
        return None
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            value = json.loads(body).get("amount")
        else:
            value = dict(parse_qsl(body.decode("utf-8"))).get("amount")
    except (ValueError, AttributeError) as exc:
        raise SandboxRefusal(INVALID_PARAMETER, "body is not JSON or a form") from exc
    return None if value is None else parse_amount(value)


async def trade_state(request: Request) -> Response:
    try:
        trade = _sandbox(request).book.get(request.path_params["out_trade_no"], utc_now())
    except SandboxRefusal as refusal:
        return _refused(refusal)
    return JSONResponse(trade.as_json())


async def notify_again(request: Request) -> Response:
    """Send the trade's notification again, as it stands now (faults do not apply)."""
    sandbox = _sandbox(request)
    now = utc_now()
    try:
        trade = sandbox.book.get(request.path_params["out_trade_no"], now)
    except SandboxRefusal as refusal:
        return _refused(refusal)
    if not trade.trade_no or not trade.notify_url:
        return _refused(SandboxRefusal("ACQ.TRADE_STATUS_ERROR", "nothing to notify: unpaid, or no notify_url"))
    delivery = sandbox.notifier.notify(trade, sandbox.notification(trade, now), faulty=False)
    return JSONResponse(delivery.as_json(), status_code=202)


async def faults(request: Request) -> Response:
    notifier = _sandbox(request).notifier
    if request.method == "POST":
        try:
            changes = json.loads(await request.body() or b"{}")
            notifier.faults = Faults.model_validate({**notifier.faults.model_dump(), **changes})
        except (ValueError, TypeError, ValidationError) as exc:
            return JSONResponse({"code": "INVALID_FAULTS", "message": str(exc)}, status_code=400)
    elif request.method == "DELETE":
        notifier.faults = Faults()
        notifier.release()
    log.info("sandbox_faults", **notifier.faults.model_dump())
    return JSONResponse(notifier.faults.model_dump())


async def release(request: Request) -> Response:
    return JSONResponse({"released": _sandbox(request).notifier.release()})


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings) -> Starlette:
    """The sandbox, its keys created under the state directory at start if missing."""
    alipay = settings.payments.alipay

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state_dir = settings.state_dir
        await asyncio.to_thread(ensure_sandbox_keys, state_dir)
        async with httpx.AsyncClient(trust_env=False) as client:
            notifier = Notifier(client, Faults())
            app.state.sandbox = Sandbox(
                app_id=alipay.app_id,
                seller_id=alipay.seller_id or SANDBOX_SELLER_ID,
                app_public=load_public_key(app_public_key_path(state_dir)),
                alipay_private=load_private_key(alipay_private_key_path(state_dir)),
                notifier=notifier,
            )
            log.info("sandbox_pay_started", app_id=alipay.app_id, keys=str(app_public_key_path(state_dir).parent))
            yield
            await notifier.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/gateway.do", gateway, methods=["GET", "POST"]),
            Route("/sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/sandbox/faults/release", release, methods=["POST"]),
            Route("/sandbox/trades/{out_trade_no}", trade_state),
            Route("/sandbox/trades/{out_trade_no}/pay", pay, methods=["POST"]),
            Route("/sandbox/trades/{out_trade_no}/notify", notify_again, methods=["POST"]),
        ],
        lifespan=lifespan,
    )

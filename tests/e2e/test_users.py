"""Accounts through the API, on the real stack: registration and its refusals, login and lockout,
the masked profile and its changes, real-name verification, ticket buyers, logout and deletion."""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx
import pytest

from tests.e2e.conftest import System

PASSWORD = "right-horse-42"
LOGIN_WINDOW_MS = 3_000
TICKET_BUYERS_MAX = 3
# Loopback is a whole /8: each address is a client of its own, with rate-limit windows of its own.
_addresses = (f"127.0.2.{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "100000",
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": "1000",
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": "1000",
        "DAMAI_USERS__LOGIN_WINDOW_MS": str(LOGIN_WINDOW_MS),
        "DAMAI_USERS__TICKET_BUYERS_MAX": str(TICKET_BUYERS_MAX),
    }


def new_mobile() -> str:
    return f"1{random.choice('3456789')}{random.randrange(10**9):09d}"


def new_email() -> str:
    return f"fan{random.randrange(10**12)}@example.com"


async def register(system: System, mobile: str, email: str | None = None, password: str = PASSWORD) -> str:
    body = {"mobile": mobile, "password": password, "confirmPassword": password}
    if email is not None:
        body["email"] = email
    response = await system.http.post("/api/v1/users", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/users/me"
    user_id: str = response.json()["userId"]
    return user_id


async def log_in(system: System, password: str = PASSWORD, **identifier: str) -> httpx.Response:
    return await system.http.post("/api/v1/sessions", json={**identifier, "password": password})


async def signed_in(system: System, mobile: str, password: str = PASSWORD) -> dict[str, str]:
    response = await log_in(system, password, mobile=mobile)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


async def test_a_registered_user_logs_in_at_once_and_reads_a_masked_profile(system: System):
    mobile, email = new_mobile(), new_email()

    user_id = await register(system, mobile, email)
    session = await log_in(system, mobile=mobile)

    assert session.status_code == 201, session.text
    body = session.json()
    assert body["tokenType"] == "Bearer" and body["userId"] == user_id and body["expiresIn"] == 3600
    assert (await log_in(system, email=email.upper())).status_code == 201
    profile = await system.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert profile.status_code == 200, profile.text
    me = profile.json()
    assert me["userId"] == user_id
    assert me["mobile"] == f"{mobile[:3]}****{mobile[-4:]}"
    assert me["email"] == "f***@example.com"
    assert me["realNameVerified"] is False and me["name"] is None
    assert mobile not in profile.text and email not in profile.text


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"confirmPassword": "other-horse-42"}, 422, "PASSWORDS_DIFFER"),
        ({"password": "short1", "confirmPassword": "short1"}, 422, "PASSWORD_TOO_WEAK"),
        ({"password": "onlyletters", "confirmPassword": "onlyletters"}, 422, "PASSWORD_TOO_WEAK"),
        ({"mobile": "12800138000"}, 422, "MOBILE_INVALID"),
        (
            {"password": "x13800138000y", "confirmPassword": "x13800138000y", "mobile": "13800138000"},
            422,
            "PASSWORD_TOO_WEAK",
        ),
        ({"mobile": "1380013800"}, 422, "MOBILE_INVALID"),
        ({"email": "not-an-email"}, 422, "EMAIL_INVALID"),
        ({"userId": "1"}, 422, "VALIDATION_FAILED"),
        # In order: the passwords, then the mobile, then the email.
        ({"confirmPassword": "x", "password": "short", "mobile": "12"}, 422, "PASSWORDS_DIFFER"),
        ({"password": "short", "confirmPassword": "short", "mobile": "12"}, 422, "PASSWORD_TOO_WEAK"),
        ({"mobile": "12", "email": "nope"}, 422, "MOBILE_INVALID"),
    ],
)
async def test_bad_registrations_are_refused_with_their_codes(system: System, change, status, code):
    body = {"mobile": new_mobile(), "password": PASSWORD, "confirmPassword": PASSWORD, **change}

    response = await system.http.post("/api/v1/users", json=body)

    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert (await log_in(system, mobile=body["mobile"])).status_code == 401


async def test_a_mobile_or_email_in_use_is_taken(system: System):
    mobile, email = new_mobile(), new_email()
    await register(system, mobile, email)

    again = await system.http.post(
        "/api/v1/users", json={"mobile": f"+86 {mobile}", "password": PASSWORD, "confirmPassword": PASSWORD}
    )
    same_email = await system.http.post(
        "/api/v1/users",
        json={"mobile": new_mobile(), "email": email, "password": PASSWORD, "confirmPassword": PASSWORD},
    )

    assert (again.status_code, again.json()["code"]) == (409, "MOBILE_TAKEN")
    assert (same_email.status_code, same_email.json()["code"]) == (409, "EMAIL_TAKEN")


async def test_five_failures_lock_the_identifier_whether_or_not_it_has_an_account(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    nobody = new_mobile()

    for identifier in (mobile, nobody):
        failures = [(await log_in(system, "wrong-pass-1", mobile=identifier)).status_code for _ in range(5)]
        locked = await log_in(system, mobile=identifier)

        assert failures == [401] * 5
        assert (locked.status_code, locked.json()["code"]) == (429, "LOGIN_LOCKED")
        assert 1 <= int(locked.headers["retry-after"]) <= LOGIN_WINDOW_MS // 1000
    # The lock ends with its window; the right password then logs in.
    await asyncio.sleep(LOGIN_WINDOW_MS / 1000 + 0.2)
    assert (await log_in(system, mobile=mobile)).status_code == 201


async def test_changing_the_mobile_stops_the_old_one_from_logging_in(system: System):
    old, new = new_mobile(), new_mobile()
    await register(system, old)
    auth = await signed_in(system, old)

    changed = await system.http.patch(
        "/api/v1/users/me", json={"mobile": new, "name": "张三丰", "gender": "MALE"}, headers=auth
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["mobile"] == f"{new[:3]}****{new[-4:]}"
    assert changed.json()["name"] == "张**" and changed.json()["gender"] == "MALE"
    assert (await log_in(system, mobile=old)).status_code == 401
    assert (await log_in(system, mobile=new)).status_code == 201
    # The old mobile is free again; the new one is not.
    await register(system, old)
    taken = await system.http.patch("/api/v1/users/me", json={"mobile": old}, headers=auth)
    assert (taken.status_code, taken.json()["code"]) == (409, "MOBILE_TAKEN")


async def test_the_password_changes_only_with_the_current_one(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    auth = await signed_in(system, mobile)

    wrong = await system.http.patch(
        "/api/v1/users/me", json={"password": "new-horse-43", "currentPassword": "nope-0000"}, headers=auth
    )
    missing = await system.http.patch("/api/v1/users/me", json={"password": "new-horse-43"}, headers=auth)
    right = await system.http.patch(
        "/api/v1/users/me", json={"password": "new-horse-43", "currentPassword": PASSWORD}, headers=auth
    )

    assert (wrong.status_code, wrong.json()["code"]) == (403, "PASSWORD_INCORRECT")
    assert (missing.status_code, missing.json()["code"]) == (422, "CURRENT_PASSWORD_REQUIRED")
    assert right.status_code == 200, right.text
    assert (await log_in(system, mobile=mobile)).status_code == 401
    assert (await log_in(system, "new-horse-43", mobile=mobile)).status_code == 201


async def test_real_name_verification_happens_once(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    auth = await signed_in(system, mobile)
    document = {"realName": "欧阳娜娜", "idType": "ID_CARD", "idNumber": "11010519491231002x"}

    verified = await system.http.post("/api/v1/users/me/verification", json=document, headers=auth)
    again = await system.http.post("/api/v1/users/me/verification", json=document, headers=auth)
    bad = await system.http.post(
        "/api/v1/users/me/verification", json={**document, "idNumber": "110105194912310021"}, headers=auth
    )

    assert verified.status_code == 200, verified.text
    me = verified.json()
    assert me["realNameVerified"] is True and me["realName"] == "欧***"
    assert me["idType"] == "ID_CARD" and me["idNumber"] == "1101**********002X"
    assert (again.status_code, again.json()["code"]) == (409, "REAL_NAME_ALREADY_VERIFIED")
    assert (bad.status_code, bad.json()["code"]) == (422, "ID_NUMBER_INVALID")


async def test_ticket_buyers_are_kept_masked_once_per_document(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    auth = await signed_in(system, mobile)
    buyer = {"name": "李四", "idType": "ID_CARD", "idNumber": "11010519491231002X"}

    added = await system.http.post("/api/v1/users/me/ticket-buyers", json=buyer, headers=auth)
    twice = await system.http.post(
        "/api/v1/users/me/ticket-buyers", json={**buyer, "idNumber": "110105 19491231 002x"}, headers=auth
    )
    passport = await system.http.post(
        "/api/v1/users/me/ticket-buyers",
        json={"name": "John Smith", "idType": "PASSPORT", "idNumber": "E12345678"},
        headers=auth,
    )
    listed = await system.http.get("/api/v1/users/me/ticket-buyers", headers=auth)

    assert added.status_code == 201, added.text
    assert added.json() == {
        "id": added.json()["id"],
        "name": "李*",
        "idType": "ID_CARD",
        "idNumber": "1101**********002X",
    }
    assert (twice.status_code, twice.json()["code"]) == (409, "TICKET_BUYER_EXISTS")
    assert passport.status_code == 201 and passport.json()["idNumber"] == "E1*****78"
    assert listed.status_code == 200
    assert [b["id"] for b in listed.json()["items"]] == [added.json()["id"], passport.json()["id"]]
    assert listed.json()["limit"] == TICKET_BUYERS_MAX
    assert "11010519491231002X" not in listed.text and "李四" not in listed.text

    removed = await system.http.delete(f"/api/v1/users/me/ticket-buyers/{added.json()['id']}", headers=auth)
    gone = await system.http.delete(f"/api/v1/users/me/ticket-buyers/{added.json()['id']}", headers=auth)
    after = await system.http.get("/api/v1/users/me/ticket-buyers", headers=auth)

    assert removed.status_code == 204
    assert (gone.status_code, gone.json()["code"]) == (404, "TICKET_BUYER_NOT_FOUND")
    assert [b["id"] for b in after.json()["items"]] == [passport.json()["id"]]


async def test_one_user_never_reaches_another_users_buyers_or_profile(system: System):
    mobile_a, mobile_b = new_mobile(), new_mobile()
    user_a = await register(system, mobile_a)
    user_b = await register(system, mobile_b)
    auth_a, auth_b = await signed_in(system, mobile_a), await signed_in(system, mobile_b)
    buyer = await system.http.post(
        "/api/v1/users/me/ticket-buyers",
        json={"name": "王五", "idType": "PASSPORT", "idNumber": "G87654321"},
        headers=auth_a,
    )

    as_b = await system.http.delete(f"/api/v1/users/me/ticket-buyers/{buyer.json()['id']}", headers=auth_b)
    b_list = await system.http.get("/api/v1/users/me/ticket-buyers", headers=auth_b)
    b_me = await system.http.get("/api/v1/users/me", headers=auth_b)
    a_list = await system.http.get("/api/v1/users/me/ticket-buyers", headers=auth_a)

    assert (as_b.status_code, as_b.json()["code"]) == (404, "TICKET_BUYER_NOT_FOUND")
    assert b_list.json()["items"] == []
    assert b_me.json()["userId"] == user_b != user_a
    assert [b["id"] for b in a_list.json()["items"]] == [buyer.json()["id"]]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "UNAUTHENTICATED"), ("Bearer not-a-token", "UNAUTHENTICATED"), ("Basic abc", "UNAUTHENTICATED")],
)
async def test_the_me_routes_need_a_valid_token(system: System, authorization, code):
    headers = {} if authorization is None else {"Authorization": authorization}

    responses = [
        await system.http.get("/api/v1/users/me", headers=headers),
        await system.http.get("/api/v1/users/me/ticket-buyers", headers=headers),
        await system.http.patch("/api/v1/users/me", json={"gender": "MALE"}, headers=headers),
        await system.http.delete("/api/v1/sessions/current", headers=headers),
    ]

    assert [(r.status_code, r.json()["code"]) for r in responses] == [(401, code)] * 4


async def test_a_logged_out_token_is_refused(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    auth = await signed_in(system, mobile)
    other = await signed_in(system, mobile)

    out = await system.http.delete("/api/v1/sessions/current", headers=auth)
    refused = await system.http.get("/api/v1/users/me", headers=auth)

    assert out.status_code == 204
    assert (refused.status_code, refused.json()["code"]) == (401, "TOKEN_REVOKED")
    assert (await system.http.get("/api/v1/users/me", headers=other)).status_code == 200


async def test_a_deleted_account_cannot_log_in_and_frees_its_mobile(system: System):
    mobile, email = new_mobile(), new_email()
    await register(system, mobile, email)
    auth = await signed_in(system, mobile)

    wrong = await system.http.request("DELETE", "/api/v1/users/me", json={"password": "nope-1234"}, headers=auth)
    deleted = await system.http.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=auth)

    assert (wrong.status_code, wrong.json()["code"]) == (403, "PASSWORD_INCORRECT")
    assert deleted.status_code == 204, deleted.text
    assert (await system.http.get("/api/v1/users/me", headers=auth)).status_code == 401
    assert (await log_in(system, mobile=mobile)).status_code == 401
    assert (await log_in(system, email=email)).status_code == 401
    again = await register(system, mobile, email)
    assert (await log_in(system, mobile=mobile)).json()["userId"] == again


async def test_a_user_keeps_at_most_the_limit_of_ticket_buyers(system: System):
    mobile = new_mobile()
    await register(system, mobile)
    auth = await signed_in(system, mobile)

    answers = [
        await system.http.post(
            "/api/v1/users/me/ticket-buyers",
            json={"name": "观众", "idType": "PASSPORT", "idNumber": f"E{n:08d}"},
            headers=auth,
        )
        for n in range(TICKET_BUYERS_MAX + 1)
    ]

    assert [a.status_code for a in answers] == [201] * TICKET_BUYERS_MAX + [409]
    assert answers[-1].json()["code"] == "TICKET_BUYERS_LIMIT"
    assert answers[-1].json()["details"] == {"limit": TICKET_BUYERS_MAX}

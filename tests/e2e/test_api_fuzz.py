"""Schemathesis over the whole published OpenAPI document, against a real API and worker on the real
stack: every operation, anonymous and with the admin credential, and the signed-in user's routes
with a user's access token; all four phases (examples, coverage, fuzzing, stateful).

Checks: no 5xx, response bodies match their schemas, and every status and content type answered
is documented. A new route is covered by being in the document; there is no list to keep.

Each runs with a fixed seed and with a fresh random one. The budget comes from
``DAMAI_FUZZ_EXAMPLES`` (examples per operation) and ``DAMAI_FUZZ_SEED`` (one seed instead of
the two); ``make fuzz`` runs the same tests with a heavy budget and a random seed. A failure
prints its seed, how to replay it, and the reproducing requests.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cli.demo.seed import seed_demo
from tests.e2e.conftest import System

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
PHASES = "examples,coverage,fuzzing,stateful"
EXAMPLES = int(os.environ.get("DAMAI_FUZZ_EXAMPLES", "15"))
FIXED_SEED = 20261130
# A fixed seed (the same cases every run) and a fresh one (new cases each run, printed on failure);
# DAMAI_FUZZ_SEED replaces both, to replay a failure.
SEEDS = (
    [int(os.environ["DAMAI_FUZZ_SEED"])]
    if "DAMAI_FUZZ_SEED" in os.environ
    else [FIXED_SEED, random.SystemRandom().randrange(1 << 31)]
)
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    # The fuzzer sends requests as fast as it can from one address: the rate limits are tested
    # on their own (test_rate_limits.py, test_captcha.py), here they would only hide what is behind.
    return {
        "DAMAI_RATE_LIMITS__ADMIN_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__CAPTCHA_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__CAPTCHA_CHECK_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__REGISTRATION_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__LOGIN_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__USER_COMMAND_LIMIT": "1000000",
        "DAMAI_RATE_LIMITS__ORDER_LIMIT": "1000000",
        "DAMAI_CAPTCHA__THRESHOLD_PER_SECOND": "1000000",
    }


@pytest_asyncio.fixture(scope="module")
async def reference_data(system: System) -> None:
    """The demo's areas and categories, so the request examples (and what the fuzzer builds from
    them) name references that exist and reach past the first rule."""
    await seed_demo(system.settings)


def fuzz(
    system: System, seed: int, report: Path, *headers: str, only: list[str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    """One schemathesis run over every operation; its exit status and JSON report."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{system.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *[arg for header in headers for arg in ("--header", header)],
        *(only or []),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, cwd=report.parent
    )
    return done, json.loads(report.read_text()) if report.exists() else {}


def summary(seed: int, done: subprocess.CompletedProcess[str]) -> str:
    replay = f"replay with DAMAI_FUZZ_SEED={seed} DAMAI_FUZZ_EXAMPLES={EXAMPLES}"
    return f"seed {seed}, {EXAMPLES} examples per operation ({replay})\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_anonymous_clients_get_no_5xx_and_only_documented_answers(system: System, reference_data, seed, tmp_path):
    done, report = fuzz(system, seed, tmp_path / "anonymous.json")

    print(summary(seed, done))
    assert done.returncode == 0, summary(seed, done)
    assert report, "schemathesis wrote no report"


@pytest.mark.parametrize("seed", SEEDS)
def test_an_admin_gets_no_5xx_and_only_documented_answers(system: System, reference_data, seed, tmp_path):
    admin = f"Authorization: Bearer {system.settings.api.admin_token}"
    done, report = fuzz(system, seed, tmp_path / "admin.json", admin)

    print(summary(seed, done))
    assert done.returncode == 0, summary(seed, done)
    assert report, "schemathesis wrote no report"


# What a signed-in user may do to their own account (logging out would end the run's session).
USER_ROUTES = ["--include-path-regex", "^/api/v1/(users/me|orders)"]
FUZZ_USER_PASSWORD = "fuzz-user-pass-7"
"""Unlike the examples' password, so the fuzzer cannot delete the account it runs as."""


@pytest.mark.parametrize("seed", SEEDS)
def test_a_signed_in_user_gets_no_5xx_and_only_documented_answers(system: System, reference_data, seed, tmp_path):
    token = _signed_in(system)
    done, report = fuzz(system, seed, tmp_path / "user.json", f"Authorization: Bearer {token}", only=USER_ROUTES)

    print(summary(seed, done))
    assert done.returncode == 0, summary(seed, done)
    assert report, "schemathesis wrote no report"


def _signed_in(system: System) -> str:
    """A new user's access token."""
    mobile = f"137{random.SystemRandom().randrange(10**8):08d}"
    password = {"password": FUZZ_USER_PASSWORD}
    with httpx.Client(base_url=system.base_url, timeout=30) as http:
        registered = http.post(
            "/api/v1/users", json={"mobile": mobile, **password, "confirmPassword": FUZZ_USER_PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        session = http.post("/api/v1/sessions", json={"mobile": mobile, **password})
        assert session.status_code == 201, session.text
    token: str = session.json()["accessToken"]
    return token

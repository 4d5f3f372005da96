"""The admin API and the cross-cutting behaviour: error bodies, faults, the write budget,
the request log, snapshots and the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from msgraph import GraphServiceClient

from local.graph_emulator import BREAK_GLASS_UPNS, EmulatorHandle
from local.ports import free_port

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]


async def test_errors_have_graphs_body_and_echo_the_client_request_id(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        f"{emulator.base_url}/groups/missing-id", headers={"client-request-id": "trace-me-42"}
    )

    error = response.json()["error"]
    assert response.status_code == 404
    assert set(error) == {"code", "message", "innerError"}
    assert error["code"] == "Request_ResourceNotFound"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == response.headers["client-request-id"] == "trace-me-42"
    assert error["innerError"]["request-id"] == response.headers["request-id"]


async def test_injected_503_is_retried_by_the_sdk_and_then_succeeds(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN the next read of a break-glass account fails once with 503 and Retry-After: 1
    upn = BREAK_GLASS_UPNS[0]
    fault = {"status": 503, "count": 1, "retryAfter": 1, "method": "GET", "path": "/users/bg-admin1"}
    assert (await http.post(f"{emulator.admin_url}/faults", json=fault)).status_code == 201

    # WHEN the SDK reads it (its retry middleware honours Retry-After)
    started = time.monotonic()
    user = await graph.users.by_user_id(upn).get()

    # THEN the call succeeded after one retry, a second later, and the log shows both attempts
    assert user is not None
    assert user.user_principal_name == upn
    assert time.monotonic() - started >= 1.0
    log = (await http.get(f"{emulator.admin_url}/requests", params={"path": "bg-admin1"})).json()["value"]
    assert [(entry["status"], entry["injectedFault"]) for entry in log] == [(503, True), (200, False)]
    assert (await http.get(f"{emulator.admin_url}/faults")).json()["value"] == []


async def test_faults_match_method_and_path_and_run_out(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    fault = {
        "status": 429,
        "count": 2,
        "retryAfter": 1.5,
        "method": "POST",
        "path": r"/groups$",
        "code": "Throttled",
    }
    await http.post(f"{emulator.admin_url}/faults", json=fault)
    body = {"displayName": "x", "mailEnabled": False, "mailNickname": "x", "securityEnabled": True}

    read = await http.get(f"{emulator.base_url}/groups")
    writes = [await http.post(f"{emulator.base_url}/groups", json=body) for _ in range(3)]

    assert read.status_code == 200
    assert [w.status_code for w in writes] == [429, 429, 201]
    assert writes[0].headers["Retry-After"] == "1.5"
    assert writes[0].json()["error"]["code"] == "Throttled"


async def test_invalid_fault_names_the_field(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{emulator.admin_url}/faults", json={"status": 503, "path": "(unclosed"})

    assert response.status_code == 400
    assert "path is not a valid regular expression" in response.json()["error"]["message"]


async def test_spent_write_budget_is_429_with_retry_after(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN a budget of 2 writes per 10 s
    reset = await http.post(
        f"{emulator.admin_url}/reset", json={"writeBudget": {"capacity": 2, "perSeconds": 10}}
    )
    assert reset.json()["writeBudget"]["capacity"] == 2
    assert emulator.demo is not None
    url = f"{emulator.base_url}/groups/{emulator.demo.it_pilot_group_id}"

    # WHEN three writes arrive at once
    statuses = [(await http.patch(url, json={"description": str(n)})).status_code for n in range(2)]
    throttled = await http.patch(url, json={"description": "late"})

    # THEN the third is Graph's 429, told to wait the 5 s a token takes to refill, and reads still work
    assert statuses == [204, 204]
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "5"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert (await http.get(url)).json()["description"] == "1"


async def test_decimal_retry_after_and_time_scale(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    budget = {"timeScale": 3000, "retryAfterFormat": "decimal"}  # 1 write per 0.05 s
    state = (await http.post(f"{emulator.admin_url}/reset", json={"writeBudget": budget})).json()
    assert emulator.demo is not None
    url = f"/groups/{emulator.demo.it_pilot_group_id}"
    # one $batch of 20 writes: the emulator takes them back to back, so however slow the machine is,
    # some follow the one before by less than the 0.05 s a token takes (all 20 would need >= 0.95 s)
    items = [
        {
            "id": str(n),
            "method": "PATCH",
            "url": url,
            "headers": {"Content-Type": "application/json"},
            "body": {"description": "x"},
        }
        for n in range(20)
    ]

    response = await http.post(f"{emulator.base_url}/$batch", json={"requests": items})

    assert (state["writeBudget"]["capacity"], state["writeBudget"]["perSeconds"]) == (1, 0.05)
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert answers["0"]["status"] == 204
    throttled = [a["headers"]["Retry-After"] for a in answers.values() if a["status"] == 429]
    assert throttled
    assert all(0 < float(value) <= 0.05 and "." in value for value in throttled)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"seed": "galaxy"}, "seed must be one of demo, empty"),
        ({"writeBudget": {"capacity": 0}}, "writeBudget.capacity must be a whole number"),
        ({"writeBudget": {"perSecond": 3}}, "writeBudget has unknown fields: perSecond"),
        ({"colour": 1}, "unknown reset fields: colour"),
    ],
)
async def test_invalid_reset_names_the_field(
    emulator: EmulatorHandle, http: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    response = await http.post(f"{emulator.admin_url}/reset", json=body)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


async def test_snapshot_round_trip_restores_the_tenant(
    emulator: EmulatorHandle, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # GIVEN a tenant with an extra user and group made through the admin API
    admin = emulator.admin_url
    user = (
        await http.post(f"{admin}/users", json={"userPrincipalName": "ada@contoso.com", "department": "IT"})
    ).json()
    await http.post(f"{admin}/groups", json={"displayName": "Wave 9", "members": ["ada@contoso.com"]})
    snapshot = tmp_path / "tenant.json"

    # WHEN it is saved, wiped with the empty seed, and reloaded from the snapshot
    saved = (await http.post(f"{admin}/snapshot", json={"path": str(snapshot)})).json()
    empty = (await http.post(f"{admin}/reset", json={"seed": "empty"})).json()
    restored = (await http.post(f"{admin}/reset", json={"snapshot": str(snapshot)})).json()

    # THEN the reload has every user, group and membership back
    assert empty["users"] == 0
    assert (restored["users"], restored["groups"], restored["memberships"]) == (
        saved["users"],
        saved["groups"],
        saved["memberships"],
    )
    fetched = await http.get(
        f"{emulator.base_url}/users/ada@contoso.com", params={"$select": "id,department"}
    )
    assert fetched.json()["id"] == user["id"]
    assert fetched.json()["department"] == "IT"


async def test_admin_user_with_unknown_fields_is_refused(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        f"{emulator.admin_url}/users", json={"userPrincipalName": "x@contoso.com", "age": 3}
    )

    assert response.status_code == 400
    assert "unknown fields: age" in response.json()["error"]["message"]


async def test_demo_seed_is_deterministic_per_random_seed(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    first = (await http.get(f"{emulator.base_url}/users", params={"$top": "999", "$select": "id"})).json()
    await http.post(f"{emulator.admin_url}/reset", json={"seed": "demo", "randomSeed": 42})
    again = (await http.get(f"{emulator.base_url}/users", params={"$top": "999", "$select": "id"})).json()
    await http.post(f"{emulator.admin_url}/reset", json={"seed": "demo", "randomSeed": 7})
    other = (await http.get(f"{emulator.base_url}/users", params={"$top": "999", "$select": "id"})).json()

    assert first["value"] == again["value"]
    assert first["value"] != other["value"]


def test_command_line_serves_until_sigterm() -> None:
    # GIVEN the emulator started the way `make run` starts it, on a free port
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.graph_emulator",
            "--port",
            str(port),
            "--seed",
            "empty",
            "--time-scale",
            "10",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        state = httpx.get(f"http://127.0.0.1:{port}/_emulator/state", timeout=5).json()

        # WHEN it is sent SIGTERM
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    # THEN it announced its URL, served the configured tenant, and exited cleanly
    assert banner.strip() == f"Graph emulator listening on http://127.0.0.1:{port}/v1.0"
    assert state["users"] == 0
    assert state["writeBudget"]["capacity"] == 300
    assert code == 0

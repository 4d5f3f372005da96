"""POST /api/hr/bamboohr and secret rotation via the real mini-host and Azurite (a plan enabling both)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hr_ingress_helpers import (
    HIRE,
    body_of,
    empty_hr_events,
    queued_envelopes,
    running_app,
    signed_headers,
)

from local.graph_emulator import EmulatorHandle
from shared.hr.bamboohr import sign_bamboohr
from tests.app_host import ROOT
from tests.conftest import PLAN_SECRETS

pytestmark = pytest.mark.functional

CURRENT_SECRET = PLAN_SECRETS["WAVEGUARD_HR_WEBHOOK_SECRET"]
NEXT_SECRET = "whsec_bmV4dC1yb3RhdGVkLXNlY3JldC1mb3ItdGVzdHM="
UNKNOWN_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
BAMBOO_KEY = "bamboohr-private-key-for-functional-tests"


def _plan_with_rotation_and_bamboohr(directory: Path) -> Path:
    text = (ROOT / "config" / "waveguard.yaml").read_text()
    rotation = "      - ${WAVEGUARD_HR_WEBHOOK_SECRET}\n"
    bamboo = "  bamboohr:                     # POST /api/hr/bamboohr\n    enabled: false\n"
    assert rotation in text
    assert bamboo in text
    text = text.replace(rotation, rotation + "      - ${WAVEGUARD_HR_WEBHOOK_SECRET_NEXT}\n")
    text = text.replace(
        bamboo,
        "  bamboohr:\n    enabled: true\n    secret: ${WAVEGUARD_BAMBOOHR_SECRET}\n"
        "    fieldMap:\n      Entra UPN: userPrincipalName\n",
    )
    path = directory / "waveguard.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def api(
    storage_connection_string: str, emulator_server: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    plan = _plan_with_rotation_and_bamboohr(tmp_path_factory.mktemp("plan"))
    environ = {
        "AzureWebJobsStorage": storage_connection_string,
        "GRAPH_BASE_URL": emulator_server.base_url,
        **PLAN_SECRETS,
        "WAVEGUARD_CONFIG": str(plan),
        "WAVEGUARD_HR_WEBHOOK_SECRET_NEXT": NEXT_SECRET,
        "WAVEGUARD_BAMBOOHR_SECRET": BAMBOO_KEY,
    }
    with running_app(environ, storage_connection_string) as url:
        yield url


@pytest.fixture
def client(api: str, storage_connection_string: str) -> Iterator[httpx.Client]:
    empty_hr_events(storage_connection_string)
    with httpx.Client(base_url=api, timeout=30) as http:
        yield http


@pytest.mark.parametrize("secret", [CURRENT_SECRET, NEXT_SECRET])
def test_either_secret_of_a_rotation_is_accepted(
    client: httpx.Client, storage_connection_string: str, secret: str
) -> None:
    body = body_of(HIRE)
    headers = signed_headers(secret, body, msg_id=f"msg_{uuid.uuid4().hex}")
    assert client.post("/hr/events", content=body, headers=headers).status_code == 202
    assert len(queued_envelopes(storage_connection_string)) == 1


def test_a_secret_outside_the_rotation_is_refused(
    client: httpx.Client, storage_connection_string: str
) -> None:
    body = body_of(HIRE)
    headers = signed_headers(UNKNOWN_SECRET, body, msg_id=f"msg_{uuid.uuid4().hex}")
    assert client.post("/hr/events", content=body, headers=headers).status_code == 401
    assert queued_envelopes(storage_connection_string) == []


def _bamboo_delivery(employee_id: str) -> bytes:
    stamp = "2026-12-01T07:59:00+0000"
    return body_of(
        {
            "employees": [
                {
                    "id": employee_id,
                    "action": "Created",
                    "timestamp": stamp,
                    "fields": {
                        "Employee #": f"E{employee_id}",
                        "Entra UPN": "ada@contoso.com",
                        "Work Email": "ada.lovelace@mail.example",
                        "First Name": "Ada",
                        "Last Name": "Lovelace",
                        "Department": "Finance",
                        "Country": "United Kingdom",
                        "supervisorEmail": "grace@contoso.com",
                        "Hire Date": "2026-12-01",
                    },
                    "changedFields": [],
                },
                {
                    "id": f"{employee_id}9",
                    "action": "Updated",
                    "timestamp": stamp,
                    "fields": {"Employee #": f"E{employee_id}9", "Department": "Risk"},
                    "changedFields": ["Department"],
                },
            ]
        }
    )


def _bamboo_headers(body: bytes, *, key: str = BAMBOO_KEY, at: datetime | None = None) -> dict[str, str]:
    # Per BambooHR's documentation: hex HMAC-SHA256 over the raw body followed by the timestamp.
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        "content-type": "application/json",
        "x-bamboohr-timestamp": stamp,
        "x-bamboohr-signature": sign_bamboohr(key, stamp, body),
    }


def test_bamboohr_delivery_queues_one_canonical_event_per_employee_under_stable_ids(
    client: httpx.Client, storage_connection_string: str
) -> None:
    # GIVEN a signed BambooHR delivery holding a hire and a department change
    body = _bamboo_delivery(uuid.uuid4().hex[:8])
    # WHEN BambooHR delivers it three times
    responses = [client.post("/hr/bamboohr", content=body, headers=_bamboo_headers(body)) for _ in range(3)]
    # THEN each answer is 202 with the same two ids, and each delivery queued the same two
    # canonical events (the worker applies each id once)
    assert [r.status_code for r in responses] == [202, 202, 202], responses[0].text
    assert responses[0].json() == responses[1].json() == responses[2].json()
    queued = queued_envelopes(storage_connection_string)
    assert [e.id for e in queued] == responses[0].json()["ids"] * 3
    hire, update = (e.payload for e in queued[:2])
    assert hire["type"] == "employee.hired"
    assert hire["data"]["userPrincipalName"] == "ada@contoso.com"  # the configured field map wins
    assert hire["data"]["displayName"] == "Ada Lovelace"
    assert hire["data"]["country"] == "GB"
    assert update["type"] == "employee.updated"
    assert update["data"]["changes"] == ["department"]


@pytest.mark.parametrize("case", ["tampered body", "wrong key", "stale timestamp", "missing signature"])
def test_bamboohr_unauthentic_deliveries_are_401_and_nothing_is_queued(
    client: httpx.Client, storage_connection_string: str, case: str
) -> None:
    body = _bamboo_delivery(uuid.uuid4().hex[:8])
    headers = _bamboo_headers(body)
    if case == "tampered body":
        body = body.replace(b"Finance", b"Sales")
    elif case == "wrong key":
        headers = _bamboo_headers(body, key="not-the-key")
    elif case == "stale timestamp":
        headers = _bamboo_headers(body, at=datetime.now(UTC) - timedelta(minutes=6))
    else:
        del headers["x-bamboohr-signature"]
    response = client.post("/hr/bamboohr", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert queued_envelopes(storage_connection_string) == []


def test_bamboohr_invalid_employee_is_400_naming_the_bamboohr_field(
    client: httpx.Client, storage_connection_string: str
) -> None:
    body = _bamboo_delivery(uuid.uuid4().hex[:8]).replace(b'"United Kingdom"', b'"Atlantis"')
    response = client.post("/hr/bamboohr", content=body, headers=_bamboo_headers(body))
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["employees[0].fields.Country"]
    assert queued_envelopes(storage_connection_string) == []

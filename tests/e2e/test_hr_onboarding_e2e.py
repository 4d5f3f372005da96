"""HR onboarding end to end: signed webhooks -> mini-host ingress -> hr-events -> worker -> Graph emulator.

One mini-host for the module (real function_app, Azurite queues and tables, the Graph emulator),
with a test copy of the plan whose provisioning re-checks take seconds instead of hours, and a
host.json whose failed messages come back after 1 s instead of 30 s.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from standardwebhooks.webhooks import Webhook

from local.demo_waves import reset_rollout_state
from local.graph_emulator import EmulatorHandle
from local.minihost import create_host
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.names import ALERTS, HR_EVENTS
from shared.state import build_state
from shared.telemetry import configure_telemetry
from tests.aio import aio
from tests.conftest import PLAN_SECRETS
from tests.emulator_probes import TapProbe
from tests.routed_alerts import routed_alerts
from tests.waiting import holds_for, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECRET = PLAN_SECRETS["WAVEGUARD_HR_WEBHOOK_SECRET"]
FINANCE_GROUP = "WaveGuard - Wave 2 Finance and HR"
TIME_SCALE = 40
TAP_LINE = re.compile(r"Temporary Access Pass:\s+(\S+)")


class Stack(TapProbe):
    """The running app and the emulator, as a test (or a person with curl) sees them."""

    def __init__(self, api: str, emulator: EmulatorHandle, storage: str) -> None:
        self.api = api
        self.emulator = emulator
        self.storage = storage
        self.http = httpx.Client(timeout=10)
        head = emulator.demo.head_ids["Finance"]  # type: ignore[union-attr]
        self.manager = self.graph(f"/users/{head}")

    def graph(self, path: str) -> Any:
        return self.http.get(self.emulator.base_url + path).raise_for_status().json()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.http.request(method, self.emulator.admin_url + path, json=body).raise_for_status().json()

    def post_hire(
        self, employee_id: str, upn: str, *, webhook_id: str | None = None, traceparent: str | None = None
    ) -> httpx.Response:
        event = {
            "type": "employee.hired",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {
                "employeeId": employee_id,
                "userPrincipalName": upn,
                "displayName": f"New Hire {employee_id}",
                "department": "Finance",
                "country": "GB",
                "hireDate": "2030-01-15",
                "managerUserPrincipalName": self.manager["userPrincipalName"],
            },
        }
        body = json.dumps(event)
        msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(msg_id, now, body),
        }
        if traceparent is not None:
            headers["traceparent"] = traceparent
        return self.http.post(f"{self.api}/hr/events", content=body, headers=headers)

    def add_user(self, employee_id: str, upn: str, **extra: Any) -> str:
        body = {
            "userPrincipalName": upn,
            "mail": upn,
            "employeeId": employee_id,
            "department": "Finance",
            "manager": self.manager["id"],  # as HR-driven provisioning sets it in Entra
            **extra,
        }
        return str(self.admin("POST", "/users", body)["id"])

    def in_wave_group(self, user_id: str) -> bool:
        groups = self.graph(f"/groups?$filter=displayName eq '{FINANCE_GROUP}'")["value"]
        return bool(groups) and user_id in {
            m["id"] for m in self.graph(f"/groups/{groups[0]['id']}/members")["value"]
        }

    def mails_about(self, upn: str) -> list[dict[str, Any]]:
        mails = self.admin("GET", f"/outbox?to={self.manager['mail']}")["value"]
        return [m for m in mails if upn in m["body"]]

    def alerts(self) -> list[Envelope]:
        return routed_alerts(self.storage)


def _empty(storage: str, *queues: str) -> None:
    for name in queues:
        client = QueueClient.from_connection_string(storage, name)
        try:
            client.create_queue()
        except ResourceExistsError:
            client.clear_messages()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, storage_connection_string: str, emulator_server: EmulatorHandle
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("onboarding-e2e")
    plan = yaml.safe_load((ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
    plan = copy.deepcopy(plan)
    # Seconds instead of hours: re-check after 1 s, 2 s, 2 s ... and give up after ~9 s.
    plan["newHires"]["provisioningRetry"] = {
        "budgetHours": 0.0025,
        "initialDelaySeconds": 1,
        "maxDelaySeconds": 2,
        "backoffFactor": 2,
    }
    (tmp / "waveguard.yaml").write_text(yaml.safe_dump(plan, sort_keys=False), "utf-8")
    host_json = json.loads((ROOT / "host.json").read_text("utf-8"))
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:01", maxPollingInterval="00:00:01")
    (tmp / "host.json").write_text(json.dumps(host_json), "utf-8")
    # The emulator's clock runs 40x faster: "two minutes late" provisioning takes 3 real seconds,
    # as the plan's re-checks above stand for 40 s, 80 s ... within a budget of about 6 minutes.
    emulator_server.reset(timeScale=TIME_SCALE)
    _empty(storage_connection_string, HR_EVENTS, ALERTS, f"{HR_EVENTS}-poison")
    environ = {
        "GRAPH_BASE_URL": emulator_server.base_url,
        "WAVEGUARD_CONFIG": str(tmp / "waveguard.yaml"),
        **PLAN_SECRETS,
    }
    # The directory was reset: forget wave groups an earlier test recorded in the shared tables.
    settings = load_settings({**environ, "AzureWebJobsStorage": storage_connection_string})
    asyncio.run(reset_rollout_state(aio(build_state(settings).kv), load_plan_for(settings)))
    host = create_host(
        "function_app:app",
        app_dir=ROOT,
        host_json=tmp / "host.json",
        http_port=0,
        environ=environ,
        storage_connection_string=storage_connection_string,
        grace_period=2.0,
    )
    with host:
        yield Stack(f"{host.base_url}/api", emulator_server, storage_connection_string)


def test_hire_delivered_three_times_gets_its_wave_one_tap_and_one_email(stack: Stack) -> None:
    # GIVEN a provisioned Finance hire
    user_id = stack.add_user("E9200", "ann.e2e@contoso.com")
    # WHEN HR delivers the same signed webhook three times
    answers = [stack.post_hire("E9200", "ann.e2e@contoso.com", webhook_id="msg_e2e_ann") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["id"] for a in answers}) == 1
    # THEN the manager gets one e-mail whose TAP is the hire's one usable TAP
    [mail] = wait_for("the manager's e-mail", lambda: stack.mails_about("ann.e2e@contoso.com"))
    assert mail["subject"] == "Temporary Access Pass for your new team member"
    tap = TAP_LINE.search(mail["body"])
    assert tap is not None
    assert hashlib.sha256(tap.group(1).encode()).hexdigest() == stack.active_tap_sha(user_id)
    # AND the hire is in the Finance wave group (joined right after the e-mail), with exactly one
    # TAP ever created
    wait_for("the wave group membership", lambda: stack.in_wave_group(user_id))
    holds_for(
        "one TAP and one e-mail (no straggler adds another)",
        lambda: len(stack.taps(user_id)) == 1 and len(stack.mails_about("ann.e2e@contoso.com")) == 1,
        seconds=1.5,
    )


def test_one_trace_runs_from_the_hr_request_to_every_graph_call_the_worker_made(stack: Stack) -> None:
    # GIVEN a provisioned Finance hire, a caller that starts a W3C trace, and the spans recorded
    # (the mini-host runs the app in this process)
    spans = InMemorySpanExporter()
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "off"}), span_exporters=[spans])
    user_id = stack.add_user("E9204", "eve.e2e@contoso.com")
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    # WHEN HR's request carries the trace
    answer = stack.post_hire("E9204", "eve.e2e@contoso.com", traceparent=f"00-{trace_id}-{caller_span}-01")
    assert answer.status_code == 202
    wait_for("the manager's e-mail", lambda: stack.mails_about("eve.e2e@contoso.com"))
    # THEN the emulator saw the same trace id on the worker's Graph calls: the TAP, the wave group
    # add and the mail, each under a span of its own (never the caller's)
    traced = [
        entry
        for entry in stack.admin("GET", "/requests")["value"]
        if (entry.get("traceparent") or "").split("-")[1:2] == [trace_id]
    ]
    calls = {(e["method"], e["path"]) for e in traced}
    assert ("POST", f"/v1.0/users/{user_id}/authentication/temporaryAccessPassMethods") in calls
    assert any(method == "POST" and path.endswith("/members/$ref") for method, path in calls)
    assert any(method == "POST" and path.endswith("/send") for method, path in calls)
    graph_parents = {e["traceparent"].split("-")[2] for e in traced}
    assert caller_span not in graph_parents
    # AND the trace starts with a server span under the caller's, and each Graph call is one span
    mine = [
        s
        for s in spans.get_finished_spans()
        if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
    ]
    [server] = [s for s in mine if s.kind is SpanKind.SERVER]
    assert server.name == "POST /api/hr/events"
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == caller_span
    client_spans = {
        f"{s.context.span_id:016x}" for s in mine if s.kind is SpanKind.CLIENT and s.context is not None
    }
    assert graph_parents <= client_spans
    assert not [
        s for s in mine if s.instrumentation_scope is not None and "kiota" in s.instrumentation_scope.name
    ]
    # AND each Graph call is at most two spans: its CLIENT span and at most one span under it
    children: dict[int, list[int]] = {}
    for s in mine:
        if s.parent is not None and s.context is not None:
            children.setdefault(s.parent.span_id, []).append(s.context.span_id)

    def descendants(span_id: int) -> int:
        return sum(1 + descendants(child) for child in children.get(span_id, []))

    graph_calls = [
        (s.name, s.context.span_id)
        for s in mine
        if s.context is not None
        and s.kind is SpanKind.CLIENT
        and f"{s.context.span_id:016x}" in graph_parents
    ]
    assert len(graph_calls) == len(graph_parents)
    assert [(name, n) for name, span_id in graph_calls if (n := descendants(span_id)) > 1] == []


def test_hire_provisioned_late_is_handled(stack: Stack) -> None:
    # GIVEN Entra creates the account two minutes (emulator clock; 3 s real) after HR's webhook
    user_id = stack.add_user("E9201", "ben.e2e@contoso.com", visibleAfterSeconds=120)
    assert stack.post_hire("E9201", "ben.e2e@contoso.com").status_code == 202
    # THEN the worker's re-checks find it and the manager gets the TAP
    wait_for("the late hire's e-mail", lambda: stack.mails_about("ben.e2e@contoso.com"), timeout=20)
    wait_for("the wave group membership", lambda: stack.in_wave_group(user_id))
    assert len(stack.taps(user_id)) == 1


def test_hire_never_provisioned_raises_an_alert_after_the_budget(stack: Stack) -> None:
    answer = stack.post_hire("E9202", "cy.e2e@contoso.com")
    assert answer.status_code == 202
    envelope_id = answer.json()["id"]

    def alert() -> Envelope | None:
        return next(
            (a for a in stack.alerts() if a.payload["details"].get("envelopeId") == envelope_id), None
        )

    found = wait_for("the not-provisioned alert", alert, timeout=25)
    assert found.payload["severity"] == "high"
    assert found.payload["labels"]["alertname"] == "HireNotProvisioned"
    assert found.payload["details"]["employeeId"] == "E9202"
    assert stack.mails_about("cy.e2e@contoso.com") == []


def test_graph_throttling_and_outage_mid_flow_end_done_once(stack: Stack) -> None:
    # GIVEN Graph throttles group writes and fails sending the mail, beyond the client's own retries
    user_id = stack.add_user("E9203", "di.e2e@contoso.com")
    stack.admin(
        "POST",
        "/faults",
        [
            {"status": 429, "count": 4, "retryAfter": 0, "method": "POST", "path": r"members/\$ref"},
            {"status": 503, "count": 4, "method": "POST", "path": "messages/[^/]+/send$"},
        ],
    )
    # WHEN the hire arrives
    assert stack.post_hire("E9203", "di.e2e@contoso.com").status_code == 202
    # THEN after the message's retries: one e-mail, carrying the one usable TAP, and the membership
    [mail] = wait_for(
        "the e-mail after the faults", lambda: stack.mails_about("di.e2e@contoso.com"), timeout=25
    )
    tap = TAP_LINE.search(mail["body"])
    assert tap is not None
    assert hashlib.sha256(tap.group(1).encode()).hexdigest() == stack.active_tap_sha(user_id)
    # (the group write comes after the e-mail: its retry may still be on the way)
    wait_for("the wave group membership", lambda: stack.in_wave_group(user_id), timeout=25)
    holds_for(
        "one e-mail (no straggler sends another)",
        lambda: len(stack.mails_about("di.e2e@contoso.com")) == 1,
        seconds=1.5,
    )

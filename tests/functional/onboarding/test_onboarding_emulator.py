"""The onboarding use cases against the real Graph emulator (msgraph-sdk over HTTP) and Azurite."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from azure.storage.queue import QueueClient

from local.graph_emulator import EmulatorHandle
from shared.config import load_plan_for, load_settings
from shared.envelope import Envelope
from shared.errors import RetryableError
from shared.graph import get_graph_client
from shared.names import ALERTS
from shared.onboarding import Deps, GraphOnboarding, HireOutcome, TerminationOutcome, process_hr_message
from shared.queues import AsyncQueueSender, get_queue_sender
from shared.state import build_state, utc_now
from tests.emulator_probes import TapProbe

pytestmark = pytest.mark.functional

FINANCE_GROUP = "WaveGuard - Wave 2 Finance and HR"
TAP_LINE = re.compile(r"Temporary Access Pass:\s+(\S+)")


@pytest.fixture
def deps(app_environ: dict[str, str]) -> Deps:
    settings = load_settings(app_environ)
    return Deps(
        settings=settings,
        plan=load_plan_for(settings),
        graph=GraphOnboarding(lambda: get_graph_client(settings)),
        # A table prefix per test: Azurite lives for the whole session, the emulator is reset.
        state=build_state(settings, table_prefix="t" + uuid.uuid4().hex[:12]).aio,
        queues=AsyncQueueSender(get_queue_sender(settings)),
    )


class Tenant(TapProbe):
    """The emulator as a test sees it: admin API and plain Graph reads."""

    def __init__(self, handle: EmulatorHandle) -> None:
        self.handle = handle
        self.http = httpx.Client(timeout=10)
        self.manager = self.get(f"/users/{handle.demo.head_ids['Finance']}")  # type: ignore[union-attr]

    def get(self, path: str) -> Any:
        return self.http.get(self.handle.base_url + path).raise_for_status().json()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.http.request(method, self.handle.admin_url + path, json=body).raise_for_status().json()

    def add_hire(self, employee_id: str, upn: str, *, visible_after: float | None = None) -> str:
        body: dict[str, Any] = {
            "userPrincipalName": upn,
            "mail": upn,
            "displayName": "Ada Newhire",
            "employeeId": employee_id,
            "department": "Finance",
            "country": "GB",
            "manager": self.manager["id"],
        }
        if visible_after is not None:
            body["visibleAfterSeconds"] = visible_after
        return str(self.admin("POST", "/users", body)["id"])

    def group_members(self, name: str) -> set[str]:
        groups = self.get(f"/groups?$filter=displayName eq '{name}'")["value"]
        if not groups:
            return set()
        return {m["id"] for m in self.get(f"/groups/{groups[0]['id']}/members")["value"]}

    def mails_to(self, address: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"/outbox?to={address}")["value"])


@pytest.fixture
def tenant(emulator_server: EmulatorHandle, deps: Deps) -> Tenant:
    return Tenant(emulator_server)


def _envelope(
    tenant: Tenant, employee_id: str, upn: str, *, event_type: str = "employee.hired", **data: Any
) -> Envelope:
    fields = {
        "employeeId": employee_id,
        "userPrincipalName": upn,
        "displayName": "Ada Newhire",
        "department": "Finance",
        "country": "GB",
        "hireDate": "2030-01-15",
        "managerUserPrincipalName": tenant.manager["userPrincipalName"],
        **data,
    }
    payload = {
        "type": event_type,
        "timestamp": "2026-11-30T08:00:00Z",
        "data": {k: v for k, v in fields.items() if v},
    }
    return Envelope(type=event_type, payload=payload, id=f"func-{uuid.uuid4().hex}")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_hire_gets_wave_group_one_tap_and_one_manager_email_even_when_replayed(
    tenant: Tenant, deps: Deps
) -> None:
    # GIVEN a provisioned Finance hire
    user_id = tenant.add_hire("E9100", "ada.newhire@contoso.com")
    envelope = _envelope(tenant, "E9100", "ada.newhire@contoso.com")
    # WHEN the same message is processed three times
    outcomes = [await process_hr_message(envelope.to_json(), deps) for _ in range(3)]
    # THEN the first did the work and the replays nothing
    assert outcomes[0] == HireOutcome("done", user_id=user_id, wave="finance-hr")
    assert [o.status for o in outcomes[1:]] == ["duplicate", "duplicate"]  # type: ignore[union-attr]
    # AND the hire is in the Finance wave group (created in the tenant), with exactly one TAP
    assert tenant.group_members(FINANCE_GROUP) == {user_id}
    [tap] = tenant.taps(user_id)
    assert (tap["lifetimeInMinutes"], tap["isUsableOnce"]) == (480, True)
    assert tap["startDateTime"].startswith("2030-01-15T00:00:00")
    # AND the manager got exactly one e-mail from the service mailbox, carrying that very TAP
    [mail] = tenant.mails_to(tenant.manager["mail"])
    assert mail["from"] == "waveguard@contoso.com"
    assert [r["address"] for r in mail["to"]] == [tenant.manager["mail"]]
    assert mail["subject"] == "Temporary Access Pass for your new team member"
    match = TAP_LINE.search(mail["body"])
    assert match is not None
    assert _sha(match.group(1)) == tenant.active_tap_sha(user_id)
    # AND the audit trail has every write
    actions = {e.action for e in deps.state.audit.sync.list()}
    assert {"wave.group.create", "wave.member.add", "tap.create", "tap.deliver"} <= actions


async def test_send_mail_failing_after_the_tap_is_recovered_with_one_email_and_a_working_tap(
    tenant: Tenant, deps: Deps
) -> None:
    user_id = tenant.add_hire("E9101", "bo.newhire@contoso.com")
    envelope = _envelope(tenant, "E9101", "bo.newhire@contoso.com")
    # GIVEN sending the saved draft answers 503 more often than the client retries in-process
    tenant.admin(
        "POST", "/faults", {"status": 503, "count": 4, "method": "POST", "path": "messages/[^/]+/send$"}
    )
    with pytest.raises(RetryableError):
        await process_hr_message(envelope.to_json(), deps)
    # WHEN the host retries the message
    await process_hr_message(envelope.to_json(), deps)
    # THEN one e-mail (the saved draft, sent now), whose TAP is the one TAP ever issued
    [mail] = tenant.mails_to(tenant.manager["mail"])
    match = TAP_LINE.search(mail["body"])
    assert match is not None
    assert _sha(match.group(1)) == tenant.active_tap_sha(user_id)
    assert len(tenant.taps(user_id)) == 1
    assert tenant.group_members(FINANCE_GROUP) == {user_id}


async def test_throttled_group_write_is_retried_and_done_once(tenant: Tenant, deps: Deps) -> None:
    user_id = tenant.add_hire("E9102", "cy.newhire@contoso.com")
    envelope = _envelope(tenant, "E9102", "cy.newhire@contoso.com")
    tenant.admin(
        "POST",
        "/faults",
        {"status": 429, "count": 4, "retryAfter": 0, "method": "POST", "path": r"members/\$ref"},
    )
    # WHEN the group write is throttled past the retry handler (it comes after the e-mail)
    with pytest.raises(RetryableError):
        await process_hr_message(envelope.to_json(), deps)
    assert len(tenant.mails_to(tenant.manager["mail"])) == 1
    # THEN the redelivery adds the member, and no second TAP or e-mail goes out
    await process_hr_message(envelope.to_json(), deps)
    assert tenant.group_members(FINANCE_GROUP) == {user_id}
    assert len(tenant.taps(user_id)) == 1
    assert len(tenant.mails_to(tenant.manager["mail"])) == 1


async def test_user_provisioned_late_is_rechecked_then_onboarded(tenant: Tenant, deps: Deps) -> None:
    # GIVEN HR is ahead of provisioning (the user appears only when the test says so)
    user_id = tenant.add_hire("E9103", "di.newhire@contoso.com", visible_after=3600)
    envelope = _envelope(tenant, "E9103", "di.newhire@contoso.com")
    first = await process_hr_message(envelope.to_json(), deps)
    assert first == HireOutcome("rechecking", recheck_in_seconds=60)
    # WHEN the re-check comes (a minute later, as scheduled) after the user appeared
    tenant.admin("POST", f"/pending-users/{user_id}/provision")
    a_minute_later = dataclasses.replace(deps, clock=lambda: utc_now() + timedelta(seconds=61))
    second = await process_hr_message(envelope.to_json(), a_minute_later)
    # THEN the hire is onboarded
    assert second == HireOutcome("done", user_id=user_id, wave="finance-hr")
    assert len(tenant.mails_to(tenant.manager["mail"])) == 1


async def test_termination_deletes_the_pending_tap(tenant: Tenant, deps: Deps) -> None:
    user_id = tenant.add_hire("E9104", "ed.newhire@contoso.com")
    await process_hr_message(_envelope(tenant, "E9104", "ed.newhire@contoso.com").to_json(), deps)
    leaver = _envelope(
        tenant, "E9104", "ed.newhire@contoso.com", event_type="employee.terminated", hireDate=None
    )
    outcome = await process_hr_message(leaver.to_json(), deps)
    assert outcome == TerminationOutcome("cleaned", user_id=user_id, taps_deleted=1, tracking_stopped=True)
    [tap] = tenant.taps(user_id)
    assert tap["deletedReason"] == "deleted"


async def test_department_change_moves_the_user_between_wave_groups(tenant: Tenant, deps: Deps) -> None:
    user_id = tenant.add_hire("E9105", "fi.newhire@contoso.com")
    await process_hr_message(_envelope(tenant, "E9105", "fi.newhire@contoso.com").to_json(), deps)
    moved = _envelope(
        tenant,
        "E9105",
        "fi.newhire@contoso.com",
        event_type="employee.updated",
        department="Sales",
        hireDate=None,
    )
    await process_hr_message(moved.to_json(), deps)
    assert tenant.group_members("WaveGuard - Wave 3 Sales and Marketing") == {user_id}
    assert tenant.group_members(FINANCE_GROUP) == set()


async def test_a_signed_hire_for_the_ceo_issues_no_tap_and_mails_nobody(
    tenant: Tenant, deps: Deps, storage_connection_string: str
) -> None:
    # GIVEN the CEO's 14-year-old account, with Authenticator and an admin role
    demo = tenant.handle.demo
    assert demo is not None
    ceo = tenant.get(f"/users/{demo.ceo_id}?$select=id,employeeId,userPrincipalName")
    tenant.admin(
        "POST", f"/users/{demo.ceo_id}/methods", {"methods": ["microsoftAuthenticatorPush"], "isAdmin": True}
    )
    tenant.add_hire("E9666", "mallory@contoso.com")  # the attacker's mailbox
    # WHEN a validly signed employee.hired names the CEO, with the attacker as manager
    envelope = _envelope(
        tenant, ceo["employeeId"], ceo["userPrincipalName"], managerUserPrincipalName="mallory@contoso.com"
    )
    outcome = await process_hr_message(envelope.to_json(), deps)
    # THEN no TAP exists on the CEO's account and nobody got an e-mail
    assert isinstance(outcome, HireOutcome)
    assert outcome.status == "done"
    assert tenant.taps(demo.ceo_id) == []
    assert tenant.admin("GET", "/outbox")["value"] == []
    # AND the refusal is audited with its reasons, and alerted on the alerts queue
    [refusal] = [e for e in deps.state.audit.sync.list() if e.action == "hire.tap.refuse"]
    assert "days ago" in refusal.reason
    assert "microsoftAuthenticatorAuthenticationMethod" in refusal.reason
    assert "Global Administrator" in refusal.reason
    queue = QueueClient.from_connection_string(storage_connection_string, ALERTS)
    alerts = [Envelope.from_json(base64.b64decode(m.content)) for m in queue.peek_messages(max_messages=32)]
    names = {
        a.payload["labels"]["alertname"]
        for a in alerts
        # the queue is shared: other tests' alert-router flushes sit on it too
        if a.type == "alert" and a.payload["details"].get("envelopeId") == envelope.id
    }
    assert "HireRefusedExistingAccount" in names

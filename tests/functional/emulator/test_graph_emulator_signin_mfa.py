"""Sign-ins with MFA requirement details: beta carries authenticationRequirement and
authenticationDetails, v1.0 does not; the gate evidence reads them (one beta read) into prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient

from local.graph_emulator import EmulatorHandle
from shared.rollout.lifecycle.graph_evidence import GraphEvidence
from tests.unit.lifecycle.fakes import plan_with

pytestmark = pytest.mark.functional

TWIN = {"id": "5f8a0d6e-1c2b-4d3e-9f00-aa11bb22cc33", "displayName": "WaveGuard - twin"}
MFA_POLICY = {"id": "6f8a0d6e-1c2b-4d3e-9f00-aa11bb22cc33", "displayName": "Require MFA"}


def _sign_in(upn: str, minutes_ago: float, **extra: Any) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {"userPrincipalName": upn, "createdDateTime": created.isoformat(), **extra}


def _prompted(upn: str, minutes_ago: float) -> dict[str, Any]:
    policy = {**MFA_POLICY, "result": "success", "enforcedGrantControls": ["Mfa"]}
    return _sign_in(upn, minutes_ago, appliedConditionalAccessPolicies=[policy])


async def test_beta_lists_the_mfa_requirement_and_v1_leaves_it_out(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    assert emulator.demo is not None
    upn = emulator.store.users[emulator.demo.ceo_id]["userPrincipalName"]
    assert (await http.post(f"{emulator.admin_url}/signins", json=[_prompted(upn, 5)])).status_code == 201
    beta_url = emulator.base_url.replace("/v1.0", "/beta")
    [beta] = (await http.get(f"{beta_url}/auditLogs/signIns")).json()["value"]
    assert beta["authenticationRequirement"] == "multiFactorAuthentication"
    assert [s["authenticationStepRequirement"] for s in beta["authenticationDetails"]] == [
        "Primary authentication",
        "Multifactor authentication",
    ]
    [v1] = (await http.get(f"{emulator.base_url}/auditLogs/signIns")).json()["value"]
    assert "authenticationRequirement" not in v1
    assert "authenticationDetails" not in v1
    refused = await http.post(
        f"{emulator.admin_url}/signins", json=_sign_in(upn, 1, authenticationRequirement="twoFactor")
    )
    assert refused.status_code == 400
    assert "authenticationRequirement" in refused.text


async def test_the_gate_evidence_counts_prompts_from_one_beta_read_and_reads_member_upns(
    emulator: EmulatorHandle, http: httpx.AsyncClient, graph: GraphServiceClient, tmp_path: Path
) -> None:
    # GIVEN the pilot's group with three demo users
    plan = plan_with(tmp_path)
    users = list(emulator.store.users.values())[:3]
    group = await http.post(
        f"{emulator.base_url}/groups",
        json={
            "displayName": plan.waves[0].group.display_name,
            "mailEnabled": False,
            "mailNickname": "pilot",
            "securityEnabled": True,
        },
    )
    for user in users:
        ref = {"@odata.id": f"{emulator.base_url}/directoryObjects/{user['id']}"}
        added = await http.post(f"{emulator.base_url}/groups/{group.json()['id']}/members/$ref", json=ref)
        assert added.status_code == 204
    # AND sign-ins: a prompt, one satisfied by the token's claim, a non-interactive one, a plain one
    upn = users[0]["userPrincipalName"]
    claim = [
        {
            "authenticationMethod": "Previously satisfied",
            "authenticationStepResultDetail": "MFA requirement satisfied by claim in the token",
        }
    ]
    injected = [
        _prompted(upn, 30),
        _sign_in(upn, 20, authenticationRequirement="multiFactorAuthentication", authenticationDetails=claim),
        _sign_in(upn, 10, authenticationRequirement="multiFactorAuthentication", isInteractive=False),
        _sign_in(upn, 5, appliedConditionalAccessPolicies=[{**TWIN, "result": "reportOnlySuccess"}]),
    ]
    assert (await http.post(f"{emulator.admin_url}/signins", json=injected)).status_code == 201
    evidence = GraphEvidence(graph, plan)
    # WHEN the evidence reads the members and the sign-ins with MFA details
    members = await evidence.wave_members("pilot")
    addresses = await evidence.wave_member_addresses("pilot")
    rows = await evidence.report_only_sign_ins(
        TWIN["displayName"], since=datetime.now(UTC) - timedelta(hours=1), mfa_details=True
    )
    # THEN the members come with their UPNs, and only the first sign-in is a prompt
    assert members == {u["id"] for u in users}
    assert {addresses[u["userPrincipalName"].casefold()] for u in users} == {u["id"] for u in users}
    by_age = sorted(rows, key=lambda r: r.created)
    assert [(r.interactive, r.mfa_prompt, r.result) for r in by_age] == [
        (True, True, ""),
        (True, False, ""),
        (True, False, "reportOnlySuccess"),
    ]
    reads = emulator.emulator.requests.entries(method="GET", path=r"/auditLogs/signIns$")
    assert [e["path"] for e in reads] == ["/beta/auditLogs/signIns"]


async def test_members_come_with_their_mail_and_one_mfa_flow_keeps_its_correlation_id(
    emulator: EmulatorHandle, http: httpx.AsyncClient, graph: GraphServiceClient, tmp_path: Path
) -> None:
    # GIVEN the pilot's group with two demo users, the second with a mailbox address unlike the UPN
    plan = plan_with(tmp_path)
    users = list(emulator.store.users.values())[:2]
    group = await http.post(
        f"{emulator.base_url}/groups",
        json={
            "displayName": plan.waves[0].group.display_name,
            "mailEnabled": False,
            "mailNickname": "pilot",
            "securityEnabled": True,
        },
    )
    for user in users:
        ref = {"@odata.id": f"{emulator.base_url}/directoryObjects/{user['id']}"}
        added = await http.post(f"{emulator.base_url}/groups/{group.json()['id']}/members/$ref", json=ref)
        assert added.status_code == 204
    renamed = await http.patch(
        f"{emulator.admin_url}/users/{users[1]['id']}", json={"mail": "Ada.L@Contoso.com"}
    )
    assert renamed.status_code == 200
    # AND one MFA flow logged twice under one correlation id, and a would-be prompt of the twin
    upn = users[0]["userPrincipalName"]
    injected = [
        {**_prompted(upn, 30), "correlationId": "flow-1"},
        {**_prompted(upn, 29), "correlationId": "flow-1"},
        _sign_in(upn, 5, appliedConditionalAccessPolicies=[{**TWIN, "result": "reportOnlyInterrupted"}]),
    ]
    assert (await http.post(f"{emulator.admin_url}/signins", json=injected)).status_code == 201
    evidence = GraphEvidence(graph, plan)
    # WHEN the evidence reads the members and the sign-ins
    await evidence.wave_members("pilot")
    addresses = await evidence.wave_member_addresses("pilot")
    rows = await evidence.report_only_sign_ins(
        TWIN["displayName"], since=datetime.now(UTC) - timedelta(hours=1), mfa_details=True
    )
    # THEN each member is found by UPN and by mail, read with the ids in one members page
    assert addresses["ada.l@contoso.com"] == users[1]["id"]
    assert {addresses[u["userPrincipalName"].casefold()] for u in users} == {u["id"] for u in users}
    members_read = emulator.emulator.requests.entries(method="GET", path=r"/groups/[^/]+/members$")[-1]
    assert "$select=id,userPrincipalName,mail" in members_read["query"]
    # AND the rows keep their correlation ids (the gate counts the flow once) and the twin's result
    by_age = sorted(rows, key=lambda r: r.created)
    assert [(r.correlation_id, r.mfa_prompt, r.result) for r in by_age][:2] == [
        ("flow-1", True, ""),
        ("flow-1", True, ""),
    ]
    assert by_age[2].result == "reportOnlyInterrupted"

"""A snapshot keeps every feature's state: TAPs, outbox, pending users, policies, methods, sign-ins,
tenant settings and per-user MFA states."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from local.graph_emulator import SERVICE_MAILBOX_UPN, EmulatorHandle

pytestmark = pytest.mark.functional


async def test_a_snapshot_restores_every_extension(
    emulator: EmulatorHandle, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # GIVEN a tenant with one of everything the extensions keep
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id
    graph, admin = emulator.base_url, emulator.admin_url
    tap = (await http.post(f"{graph}/users/{ceo}/authentication/temporaryAccessPassMethods", json={})).json()
    mail = {"message": {"subject": "Hi", "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}]}}
    assert (await http.post(f"{graph}/users/{SERVICE_MAILBOX_UPN}/sendMail", json=mail)).status_code == 202
    hire = {"userPrincipalName": "late.hire@contoso.com", "visibleAfterSeconds": 86400}
    assert (await http.post(f"{admin}/users", json=hire)).status_code == 201
    policy = {
        "displayName": "Block legacy authentication",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientAppTypes": ["exchangeActiveSync", "other"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeGroups": [emulator.demo.break_glass_group_id]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    created = (await http.post(f"{graph}/identity/conditionalAccess/policies", json=policy)).json()
    await http.post(f"{admin}/users/{ceo}/methods", json={"methods": ["fido2"]})
    await http.post(f"{admin}/signins", json={"userId": ceo})
    assert (
        await http.put(f"{admin}/users/{ceo}/per-user-mfa", json={"state": "enforced"})
    ).status_code == 200
    crafted = {"securityDefaults": True, "licence": "p1", "methods": {"TemporaryAccessPass": "disabled"}}
    assert (await http.patch(f"{admin}/tenant-settings", json=crafted)).status_code == 200
    snapshot = tmp_path / "tenant.json"
    assert (await http.post(f"{admin}/snapshot", json={"path": str(snapshot)})).status_code == 200

    # WHEN the tenant is wiped and reloaded from the snapshot
    await http.post(f"{admin}/reset", json={"seed": "empty"})
    restored = await http.post(f"{admin}/reset", json={"snapshot": str(snapshot)})

    # THEN every feature's state is back (the CEO joined the 145 seeded users with methods)
    assert restored.status_code == 200
    assert restored.json()["featureCounts"] == {
        "conditionalAccess": 1,
        "outbox": 1,
        "perUserMfa": 11,  # the demo's 10 people on per-user MFA and the CEO
        "provisioning": 1,
        "registration": 146,
        "signIns": 1,
        "tap": 1,
        "tenantSettings": 2,  # the methods enabled: Authenticator and FIDO2 (TAP was disabled)
    }
    settings = (await http.get(f"{admin}/tenant-settings")).json()
    assert (settings["securityDefaults"], settings["licence"]) == (True, "p1")
    assert settings["methods"]["TemporaryAccessPass"] == "disabled"
    assert (await http.get(f"{admin}/taps")).json()["value"][0]["activeId"] == tap["id"]
    assert (await http.get(f"{admin}/outbox")).json()["count"] == 1
    assert (await http.get(f"{admin}/pending-users")).json()["count"] == 1
    policies = (await http.get(f"{graph}/identity/conditionalAccess/policies")).json()["value"]
    assert [p["id"] for p in policies] == [created["id"]]
    report = f"{graph}/reports/authenticationMethods/userRegistrationDetails/{ceo}"
    assert (await http.get(report)).json()["methodsRegistered"][-1] == "fido2"
    assert [s["userId"] for s in (await http.get(f"{graph}/auditLogs/signIns")).json()["value"]] == [ceo]
    requirements = f"{emulator.beta_url}/users/{ceo}/authentication/requirements"
    assert (await http.get(requirements)).json()["perUserMfaState"] == "enforced"

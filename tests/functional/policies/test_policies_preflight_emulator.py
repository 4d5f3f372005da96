"""A crafted tenant on the emulator (security defaults on, a P1-only licence, TAP disabled): doctor
says what each missing piece blocks, `policies apply` and the wave promotion refuse before writing,
and Graph itself refuses a CA policy while security defaults are on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from cli.main import main
from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.errors import PermanentError
from shared.graph import build_graph_client
from shared.rollout.policies import sync_baseline
from shared.rollout.wave_state import WAVES_NAMESPACE
from shared.state import build_state, utc_now

pytestmark = pytest.mark.functional

CRAFTED = {"securityDefaults": True, "licence": "p1", "methods": {"TemporaryAccessPass": "disabled"}}


def _craft(emulator: EmulatorHandle, body: dict[str, Any]) -> None:
    httpx.patch(f"{emulator.admin_url}/tenant-settings", json=body).raise_for_status()


def _live(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulator.base_url}/identity/conditionalAccess/policies").json()["value"])


def test_doctor_names_what_each_missing_piece_blocks(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    _craft(emulator_server, CRAFTED)
    code = main(["doctor", "--json"], environ=app_environ)
    report = json.loads(capsys.readouterr().out)
    [tenant] = [c for c in report["checks"] if c["name"] == "tenant"]
    assert code == 1
    assert not tenant["ok"]
    lines = tenant["detail"].splitlines()
    assert lines[0].startswith("security-defaults: security defaults are on; blocks every Conditional Access")
    assert any(line.startswith("licence-p2: no Microsoft Entra ID P2 licence") for line in lines)
    assert any(line.startswith("temporary-access-pass: TemporaryAccessPass is disabled") for line in lines)
    assert not any(line.startswith(("licence-p1", "authenticator")) for line in lines)


def test_apply_refuses_while_security_defaults_are_on_then_works_once_they_are_off(
    app_environ: dict[str, str], emulator_server: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the crafted tenant
    _craft(emulator_server, CRAFTED)
    # WHEN an operator applies the baseline
    code = main(["policies", "apply", "--yes", "--json"], environ=app_environ)
    doc = json.loads(capsys.readouterr().out)
    # THEN nothing is written and the refusal says what to do
    assert code == 1
    assert doc["applied"] is None
    assert doc["message"].startswith(
        "refused: the tenant cannot take these policies: security defaults are on"
    )
    assert "Manage security defaults" in doc["message"]
    assert _live(emulator_server) == []
    # AND Graph itself refuses a policy while security defaults are on (as Entra does)
    policy = {
        "displayName": "Someone else's policy",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {"applications": {"includeApplications": ["All"]}, "users": {"includeUsers": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    refused = httpx.post(
        f"{emulator_server.base_url}/identity/conditionalAccess/policies", json=policy, headers=ADMIN_HEADERS
    )
    assert refused.status_code == 400
    assert "Security Defaults is enabled" in refused.json()["error"]["message"]
    # WHEN an administrator switches security defaults off (P1 is enough for CA)
    _craft(emulator_server, {"securityDefaults": False})
    code = main(["policies", "apply", "--yes", "--json"], environ=app_environ)
    doc = json.loads(capsys.readouterr().out)
    # THEN the baseline is applied, and the missing P2 and TAP are still reported
    assert code == 0, doc["message"]
    assert len(_live(emulator_server)) == 5
    warned = {f["check"] for f in doc["preflight"]["findings"] if not f["ok"]}
    assert warned == {"licence-p2", "temporary-access-pass"}
    assert doc["preflight"]["blocking"] == []


def test_the_wave_promotion_refuses_too(app_environ: dict[str, str], emulator_server: EmulatorHandle) -> None:
    _craft(emulator_server, {"securityDefaults": True})
    settings = load_settings(app_environ)

    async def promote() -> None:
        await sync_baseline(
            build_graph_client(settings),
            load_plan_for(settings),
            build_state(settings).aio,
            actor="test",
            correlation_id="c-1",
            reason="wave promotion",
        )

    with pytest.raises(PermanentError, match="security defaults are on"):
        asyncio.run(promote())
    assert _live(emulator_server) == []


def test_a_rollback_is_never_refused_by_the_preflight(
    app_environ: dict[str, str], emulator_server: EmulatorHandle
) -> None:
    # GIVEN the pilot enforced by the live baseline
    settings = load_settings(app_environ)
    plan = load_plan_for(settings)
    stores = build_state(settings)
    pilot = plan.waves[0]
    body = {
        "displayName": pilot.group.display_name,
        "mailEnabled": False,
        "mailNickname": "p",
        "securityEnabled": True,
    }
    httpx.post(f"{emulator_server.base_url}/groups", json=body, headers=ADMIN_HEADERS).raise_for_status()

    def sync(reason: str) -> None:
        asyncio.run(
            sync_baseline(
                build_graph_client(settings),
                plan,
                stores.aio,
                actor="test",
                correlation_id="c-2",
                reason=reason,
            )
        )

    try:
        stores.kv.put(WAVES_NAMESPACE, pilot.name, {"state": "enforced", "since": utc_now().isoformat()})
        sync("promotion")
        sync("promotion")  # created report-only first, then enabled
        [mfa] = [p for p in _live(emulator_server) if p["displayName"] == "WaveGuard - Require MFA"]
        assert mfa["state"] == "enabled"
        # WHEN the tenant turns unfit (licence gone, security defaults on) and the pilot is rolled back
        _craft(emulator_server, {"securityDefaults": True, "licence": "none"})
        stores.kv.put(WAVES_NAMESPACE, pilot.name, {"state": "report-only", "since": utc_now().isoformat()})
        sync("rollback of pilot")
        # THEN the rollback went through: nothing is enforced any more
        [mfa] = [p for p in _live(emulator_server) if p["displayName"] == "WaveGuard - Require MFA"]
        assert mfa["conditions"]["users"]["includeGroups"] == []
    finally:
        stores.kv.delete(WAVES_NAMESPACE, pilot.name)

"""The seed's scenarios end to end: `waveguard policies plan|apply` with every new option, against the
real Graph emulator and Azurite; and a tenant with only Entra ID P1 refusing a risk plan in the lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli.main import main
from local.graph_emulator import EmulatorHandle
from shared.config import APP_ROOT

pytestmark = pytest.mark.functional

LOCATIONS_PATH = "/v1.0/identity/conditionalAccess/namedLocations"
CA_PATH = "/v1.0/identity/conditionalAccess/policies"
REPORT_ONLY = "enabledForReportingButNotEnforced"
SEED_OPTIONS: dict[str, Any] = {
    "requireMfa": {"satisfiedBy": ["compliantDevice", "domainJoinedDevice"]},
    "trustedLocations": [{"name": "Head office", "ipRanges": ["203.0.114.0/24", "2001:4860:10::/48"]}],
    "signInRisk": {"enabled": True},
    "userRisk": {"enabled": True},
    "allowedCountries": {"enabled": True, "countries": ["GB", "IE"], "outside": "block"},
}


def _environ(app_environ: dict[str, str], tmp_path: Path, **options: Any) -> dict[str, str]:
    """The app's environment with the example plan plus these ``policies:`` options."""
    doc = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    doc["policies"].update(options)
    path = tmp_path / "waveguard.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return {**app_environ, "WAVEGUARD_CONFIG": str(path)}


def _run(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["policies", *argv, "--json"], environ=env)
    return code, json.loads(capsys.readouterr().out)


def _get(emulator: EmulatorHandle, path: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{emulator.base_url}{path.removeprefix('/v1.0')}").json()["value"])


def _writes(emulator: EmulatorHandle, path: str) -> list[dict[str, Any]]:
    log = httpx.get(f"{emulator.admin_url}/requests", params={"path": path}).json()["value"]
    return [r for r in log if r["method"] in ("POST", "PATCH", "DELETE")]


def test_the_seed_plan_applies_named_locations_then_policies_and_a_rerun_changes_nothing(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = emulator_server.demo
    assert demo is not None
    env = _environ(app_environ, tmp_path, **SEED_OPTIONS)
    # WHEN planned on the demo tenant (Entra ID P2)
    code, plan = _run(env, capsys, "plan")
    # THEN two named locations and 13 policies (the 5 of the baseline, 4 pairs) to create, and the lint passes
    assert code == 3, plan["lint"]
    assert plan["namedLocations"]["summary"] == {"create": 2, "update": 0, "unchanged": 0}
    assert plan["summary"] == {"create": 13, "update": 0, "unchanged": 0}
    assert plan["lint"]["ok"] is True
    # WHEN applied
    code, applied = _run(env, capsys, "apply", "--yes")
    assert code == 0, applied["message"]
    assert applied["applied"]["writes"] == 15
    # THEN the named locations exist in Graph's shapes: the office trusted, the countries as planned
    locations = {loc["displayName"]: loc for loc in _get(emulator_server, LOCATIONS_PATH)}
    office = locations["WaveGuard - Trusted network: Head office"]
    countries = locations["WaveGuard - Allowed countries"]
    assert office["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert office["isTrusted"] is False  # excluded by id: no trust mark needed
    assert sorted(r["cidrAddress"] for r in office["ipRanges"]) == ["2001:4860:10::/48", "203.0.114.0/24"]
    assert countries["countriesAndRegions"] == ["GB", "IE"]
    # AND every policy is report-only, excludes break-glass, and references the named locations by id
    live = {p["displayName"]: p for p in _get(emulator_server, CA_PATH)}
    assert len(live) == 13
    for policy in live.values():
        users = policy["conditions"]["users"]
        assert policy["state"] == REPORT_ONLY, policy["displayName"]
        assert set(demo.break_glass_ids) <= set(users["excludeUsers"]), policy["displayName"]
        assert users["excludeGroups"] == [demo.break_glass_group_id], policy["displayName"]
    mfa = live["WaveGuard - Require MFA"]
    assert mfa["conditions"]["locations"]["excludeLocations"] == [office["id"]]
    assert mfa["grantControls"]["builtInControls"] == ["mfa", "compliantDevice", "domainJoinedDevice"]
    outside = live["WaveGuard - Sign-ins outside allowed countries"]["conditions"]["locations"]
    assert sorted(outside["excludeLocations"]) == sorted([countries["id"], office["id"]])
    user_risk = live["WaveGuard - User risk: require password change"]
    assert user_risk["grantControls"]["operator"] == "AND"
    assert (
        live["WaveGuard - Administrators: MFA and compliant device on every app"]["conditions"]["locations"]
        is None
    )
    # WHEN applied a second time
    httpx.delete(f"{emulator_server.admin_url}/requests").raise_for_status()
    code, again = _run(env, capsys, "apply", "--yes")
    # THEN nothing to apply: no write reached Graph, and the named locations were created once
    assert code == 0
    assert again["summary"] == {"create": 0, "update": 0, "unchanged": 13}
    assert again["namedLocations"]["summary"] == {"create": 0, "update": 0, "unchanged": 2}
    assert _writes(emulator_server, CA_PATH) == []
    assert _writes(emulator_server, LOCATIONS_PATH) == []
    assert len(_get(emulator_server, LOCATIONS_PATH)) == 2
    assert main(["policies", "plan"], environ=env) == 0


def test_a_tenant_with_only_p1_refuses_a_sign_in_risk_plan_in_the_lint(
    app_environ: dict[str, str],
    emulator_server: EmulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a tenant licensed with Entra ID P1 (Microsoft 365 E3) and a plan with sign-in risk
    httpx.patch(f"{emulator_server.admin_url}/tenant-settings", json={"licence": "p1"}).raise_for_status()
    env = _environ(app_environ, tmp_path, signInRisk={"enabled": True})
    # WHEN planned
    code, plan = _run(env, capsys, "plan")
    # THEN the lint refuses both sign-in risk pairs, naming the licence and the plan option
    assert code == 1
    blocking = [
        f for f in plan["lint"]["findings"] if f["severity"] == "error" and f["scope"] == "after-apply"
    ]
    assert {f["check"] for f in blocking} == {"WG-CA-08"}
    assert {f["policy"] for f in blocking} == {
        "WaveGuard - Sign-in risk: block",
        "WaveGuard - Sign-in risk: block (report-only waves)",
        "WaveGuard - Sign-in risk: require MFA",
        "WaveGuard - Sign-in risk: require MFA (report-only waves)",
    }
    assert all("policies.signInRisk.enabled: false" in f["message"] for f in blocking)
    assert not next(f for f in plan["preflight"]["findings"] if f["check"] == "licence-p2")["ok"]
    # AND apply writes nothing at all
    code, refused = _run(env, capsys, "apply", "--yes")
    assert code == 1
    assert refused["message"] == "refused: the lint failed; nothing was written"
    assert _get(emulator_server, CA_PATH) == []
    assert _writes(emulator_server, CA_PATH) == []

"""The tenant preflight: security defaults, licences and authentication methods, judged from Graph's
own JSON shapes; `policies apply` refuses when the tenant cannot take CA policies."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from cli.policies import EXIT_FAILED, PolicyDeps, run_apply, run_plan
from shared.errors import PermanentError
from shared.rollout.policies.preflight import (
    AUTH_METHODS_PATH,
    SECURITY_DEFAULTS_PATH,
    SKUS_PATH,
    Preflight,
    tenant_preflight,
)

E5 = {
    "skuPartNumber": "SPE_E5",
    "capabilityStatus": "Enabled",
    "servicePlans": [
        {"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Success"},
        {"servicePlanName": "AAD_PREMIUM_P2", "provisioningStatus": "Success"},
    ],
}
E3 = {
    "skuPartNumber": "SPE_E3",
    "capabilityStatus": "Enabled",
    "servicePlans": [{"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Success"}],
}
ALL_USERS = [{"targetType": "group", "id": "all_users"}]


def _methods(authenticator: str = "enabled", tap: str = "enabled", targets: Any = None) -> dict[str, Any]:
    return {
        "authenticationMethodConfigurations": [
            {"id": "MicrosoftAuthenticator", "state": authenticator, "includeTargets": targets or ALL_USERS},
            {"id": "TemporaryAccessPass", "state": tap, "includeTargets": targets or ALL_USERS},
        ]
    }


def _tenant(
    *, defaults: bool = False, skus: list[dict[str, Any]] | None = None, methods: Any = None
) -> dict[str, Any]:
    return {
        SECURITY_DEFAULTS_PATH: {"id": "00000000-0000-0000-0000-000000000005", "isEnabled": defaults},
        SKUS_PATH: {"value": [E5] if skus is None else skus},
        AUTH_METHODS_PATH: _methods() if methods is None else methods,
    }


async def _run(answers: dict[str, Any]) -> Preflight:
    async def read(path: str) -> dict[str, Any] | None:
        answer = answers.get(path)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    return await tenant_preflight(read)


def _by_check(preflight: Preflight) -> dict[str, Any]:
    return {f.check: f for f in preflight.findings}


async def test_a_ready_tenant_passes_every_check() -> None:
    preflight = await _run(_tenant())
    assert preflight.ok
    assert preflight.blocking == ()
    assert list(_by_check(preflight)) == [
        "security-defaults",
        "licence-p1",
        "licence-p2",
        "authenticator",
        "temporary-access-pass",
    ]


async def test_security_defaults_block_apply_and_say_what_to_do() -> None:
    preflight = await _run(_tenant(defaults=True))
    [blocking] = preflight.blocking
    assert blocking.check == "security-defaults"
    assert "Manage security defaults" in blocking.fix
    assert "every Conditional Access policy" in blocking.blocks


async def test_a_p1_only_tenant_applies_but_is_told_risk_needs_p2() -> None:
    preflight = await _run(_tenant(skus=[E3]))
    checks = _by_check(preflight)
    assert checks["licence-p1"].ok
    assert not checks["licence-p2"].ok
    assert not checks["licence-p2"].blocking
    assert "risk detections" in checks["licence-p2"].blocks
    assert preflight.blocking == ()


@pytest.mark.parametrize(
    "skus",
    [
        [],
        [{**E5, "capabilityStatus": "Suspended"}],
        [
            {
                "skuPartNumber": "X",
                "capabilityStatus": "Enabled",
                "servicePlans": [{"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Disabled"}],
            }
        ],
        [{"skuPartNumber": "O365_BUSINESS", "capabilityStatus": "Enabled", "servicePlans": "garbage"}],
    ],
)
async def test_without_a_usable_p1_licence_apply_is_blocked(skus: list[dict[str, Any]]) -> None:
    preflight = await _run(_tenant(skus=skus))
    assert [f.check for f in preflight.blocking] == ["licence-p1"]


async def test_methods_disabled_or_scoped_to_groups_are_reported_with_what_they_block() -> None:
    preflight = await _run(_tenant(methods=_methods(tap="disabled")))
    checks = _by_check(preflight)
    assert checks["authenticator"].ok
    assert not checks["temporary-access-pass"].ok
    assert "Temporary Access Pass" in checks["temporary-access-pass"].blocks
    assert preflight.blocking == ()  # CA can be applied; onboarding is what suffers
    scoped = await _run(_tenant(methods=_methods(targets=[{"targetType": "group", "id": "g-1"}])))
    assert "only for 1 group(s)" in _by_check(scoped)["authenticator"].detail
    excluding = _methods()
    excluding["authenticationMethodConfigurations"][0]["excludeTargets"] = [
        {"targetType": "group", "id": "g-9"}
    ]
    excluded = _by_check(await _run(_tenant(methods=excluding)))["authenticator"]
    assert not excluded.ok
    assert "except 1 group(s): g-9" in excluded.detail


async def test_an_unreadable_answer_is_reported_never_guessed() -> None:
    answers = _tenant()
    answers[SECURITY_DEFAULTS_PATH] = PermanentError("Graph refused: Authorization_RequestDenied")
    answers[SKUS_PATH] = None  # 404
    preflight = await _run(answers)
    checks = _by_check(preflight)
    assert not checks["security-defaults"].ok
    assert "Authorization_RequestDenied" in checks["security-defaults"].detail
    assert "Policy.Read.All" in checks["security-defaults"].fix
    assert "LicenseAssignment.Read.All" in checks["licence"].fix
    assert preflight.blocking == ()


def _args(**kw: Any) -> Any:
    import argparse

    return argparse.Namespace(**{"json": False, "yes": True, **kw})


@pytest.fixture
def blocked_deps(plan: Any, tenant: Any, ca_api: Any, lookup: Any, stores: Any) -> PolicyDeps:
    async def resolve() -> Any:
        return tenant

    async def preflight() -> Preflight:
        return await _run(_tenant(defaults=True))

    deps = PolicyDeps(plan, ca_api, lookup, resolve, stores.aio.kv, stores.aio.audit, stores.aio.idempotency)
    return dataclasses.replace(deps, preflight=preflight)


def test_apply_refuses_while_security_defaults_are_on_and_writes_nothing(
    blocked_deps: PolicyDeps, ca_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_apply(_args(), {"USER": "ops"}, lambda env: blocked_deps)
    out = capsys.readouterr().out
    assert code == EXIT_FAILED
    assert ca_api.writes == []
    assert "refused: the tenant cannot take these policies: security defaults are on" in out
    assert "BLOCKS security-defaults" in out


def test_plan_json_carries_the_preflight_and_fails(
    blocked_deps: PolicyDeps, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_plan(_args(json=True), {"USER": "ops"}, lambda env: blocked_deps)
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_FAILED
    assert doc["preflight"]["blocking"] == ["security-defaults"]
    assert doc["exitCode"] == EXIT_FAILED

"""`waveguard policies plan|apply` over in-memory fakes: output, JSON and CI exit codes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from cli.main import main
from cli.policies import EXIT_CHANGES, EXIT_FAILED, EXIT_OK, EXIT_USAGE, PolicyDeps, run_apply, run_plan
from shared.config import RolloutPlan
from shared.rollout.policies import APPLY_LOCK_KEY, TenantIds
from shared.rollout.wave_state import WaveState, write_wave_state
from shared.state import StateStores, utc_now
from tests.aio import aio


@pytest.fixture
def deps(plan: RolloutPlan, tenant: TenantIds, ca_api: Any, lookup: Any, stores: StateStores) -> PolicyDeps:
    async def resolve() -> TenantIds:
        return tenant

    return PolicyDeps(plan, ca_api, lookup, resolve, stores.aio.kv, stores.aio.audit, stores.aio.idempotency)


def _args(**kw: Any) -> Any:
    import argparse

    return argparse.Namespace(**{"json": False, "yes": False, **kw})


def _plan(deps: PolicyDeps, **kw: Any) -> int:
    return run_plan(_args(**kw), {"USER": "ops"}, lambda env: deps)


def _apply(deps: PolicyDeps, **kw: Any) -> int:
    return run_apply(_args(**kw), {"USER": "ops"}, lambda env: deps)


def test_plan_on_an_empty_tenant_lists_the_creates_and_exits_3(
    deps: PolicyDeps, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _plan(deps)
    out = capsys.readouterr().out
    assert code == EXIT_CHANGES
    assert out.count("+ create") == 5
    assert "+ create    WaveGuard - Block legacy authentication  (new: report-only)" in out
    assert "Plan: 5 to create, 0 to update, 0 unchanged. Lint passed." in out


def test_apply_then_plan_shows_nothing_to_do_and_exits_0(
    deps: PolicyDeps, ca_api: Any, stores: StateStores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _apply(deps, yes=True) == EXIT_OK
    assert "applied 5 write(s)" in capsys.readouterr().out
    assert {e.actor for e in stores.audit.list()} == {"cli:ops"}
    # WHEN planned and applied again
    assert _plan(deps) == EXIT_OK
    assert "Plan: 0 to create, 0 to update, 5 unchanged." in capsys.readouterr().out
    writes = len(ca_api.writes)
    assert _apply(deps, yes=True) == EXIT_OK
    # THEN the second apply wrote nothing
    assert "nothing to apply" in capsys.readouterr().out
    assert len(ca_api.writes) == writes


def test_plan_shows_a_hand_edit_field_by_field_in_json(
    deps: PolicyDeps, ca_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _apply(deps, yes=True)
    capsys.readouterr()
    ca_api.by_name("Require MFA registration")["conditions"]["users"]["excludeGroups"] = []
    code = _plan(deps, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_CHANGES
    assert doc["exitCode"] == EXIT_CHANGES
    assert doc["summary"] == {"create": 0, "update": 1, "unchanged": 4}
    [update] = [c for c in doc["changes"] if c["action"] == "update"]
    assert update["displayName"] == "WaveGuard - Require MFA registration"
    assert update["fields"] == [
        {
            "path": "conditions.users.excludeGroups",
            "old": None,
            "new": ["00000000-0000-0000-0000-00000000000e"],
        }
    ]
    assert [(f["check"], f["scope"]) for f in doc["lint"]["findings"]] == [("WG-CA-01", "live")]


def test_lint_failure_exits_1_and_apply_writes_nothing(
    deps: PolicyDeps, lookup: Any, tenant: TenantIds, ca_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the break-glass exclusion group was deleted from the tenant
    lookup.groups.discard(tenant.exclusion_group_id)
    assert _plan(deps) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "Lint (the policies after this apply; errors block it):\n  [WG-CA-02] error: " in out
    assert "Lint FAILED (5 blocking)." in out
    code = _apply(deps, yes=True, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_FAILED
    assert doc["applied"] is None
    assert doc["message"] == "refused: the lint failed; nothing was written"
    assert ca_api.writes == []


def test_apply_without_yes_outside_a_terminal_is_a_usage_error(
    deps: PolicyDeps, ca_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _apply(deps) == EXIT_USAGE
    assert "--yes" in capsys.readouterr().err
    assert ca_api.writes == []


def test_the_subcommand_is_registered_and_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["policies"], environ={})
    assert caught.value.code == EXIT_USAGE
    assert "plan" in capsys.readouterr().err


def test_a_bad_config_is_an_error_naming_it(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    code = main(["--config", str(missing), "policies", "plan"], environ={})
    assert code == EXIT_FAILED
    assert "nope.yaml" in capsys.readouterr().err


def test_a_second_apply_while_one_is_running_is_refused(
    deps: PolicyDeps, ca_api: Any, stores: StateStores, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN another apply holds the tenant's lock
    assert stores.idempotency.claim(APPLY_LOCK_KEY, ttl=timedelta(minutes=15)).acquired
    # WHEN an apply starts
    code = _apply(deps, yes=True)
    # THEN it refuses without writing, and says why
    assert code == EXIT_FAILED
    assert "another `policies apply` is running" in capsys.readouterr().err
    assert ca_api.writes == []
    # AND once the lock is released, apply proceeds
    stores.idempotency.release(APPLY_LOCK_KEY)
    assert _apply(deps, yes=True) == EXIT_OK


def test_plan_json_names_the_waves_in_each_mfa_policy(
    deps: PolicyDeps, stores: StateStores, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(write_wave_state(aio(stores.kv), "pilot", WaveState.REPORT_ONLY, utc_now()))
    _plan(deps, json=True)
    doc = json.loads(capsys.readouterr().out)
    waves = {c["displayName"]: c.get("waves") for c in doc["changes"]}
    assert waves["WaveGuard - Require MFA"] == []
    assert waves["WaveGuard - Require MFA (report-only waves)"] == ["pilot"]
    assert waves["WaveGuard - Block legacy authentication"] is None
    assert doc["waves"]["pilot"] == "report-only"

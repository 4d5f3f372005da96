"""`waveguard waves alerts` / `resolve-alert` against Azurite: what holds a wave, and letting it go."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from cli.main import main
from shared.alerting import ALERTS_OPEN_NAMESPACE, Alert, open_alert
from shared.config import load_plan_for, load_settings
from shared.rollout.lifecycle import open_critical_alerts
from shared.state import StateStores, build_state
from tests.aio import aio

pytestmark = pytest.mark.functional


@pytest.fixture
def stores(app_environ: dict[str, str]) -> Iterator[StateStores]:
    """The app's tables, with every wave's open alerts cleared before and after."""
    settings = load_settings(app_environ)
    state = build_state(settings)
    waves = [w.name for w in load_plan_for(settings).waves]
    for wave in waves:
        state.kv.delete(ALERTS_OPEN_NAMESPACE, wave)
    yield state
    for wave in waves:
        state.kv.delete(ALERTS_OPEN_NAMESPACE, wave)


def _open(stores: StateStores) -> None:
    alert = Alert(
        key="wave-sync:pilot:blast-radius",
        severity="critical",
        source="test",
        summary="wave pilot: the sync would add 900 and remove 0",
    )
    asyncio.run(open_alert(aio(stores.kv), "pilot", alert, alert_id="alert-0123"))


def test_alerts_lists_what_holds_each_wave(
    stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _open(stores)
    assert main(["waves", "alerts"], environ=app_environ) == 0
    out = capsys.readouterr().out
    assert "pilot: 1 open, 1 critical  (holds promotion)" in out
    assert "alert-0123  critical" in out
    assert "finance-hr: 0 open, 0 critical" in out
    assert main(["waves", "alerts", "pilot", "--json"], environ=app_environ) == 0
    [row] = json.loads(capsys.readouterr().out)["waves"]["pilot"]
    assert (row["id"], row["key"], row["severity"]) == (
        "alert-0123",
        "wave-sync:pilot:blast-radius",
        "critical",
    )


def test_resolve_alert_lets_the_wave_go_and_is_audited(
    stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _open(stores)
    # an id the wave does not have, and a wave the plan does not have: exit 2 naming them
    assert main(["waves", "resolve-alert", "pilot", "alert-nope", "--reason", "x"], environ=app_environ) == 2
    assert "no open alert with id or key 'alert-nope'" in capsys.readouterr().err
    assert main(["waves", "resolve-alert", "nowave", "alert-0123", "--reason", "x"], environ=app_environ) == 2
    assert "wave 'nowave' is not in the plan" in capsys.readouterr().err
    assert asyncio.run(open_critical_alerts(aio(stores.kv), "pilot")) == ["alert-0123"]
    # resolved by its id: the gate no longer sees it, and the audit log records who and why
    argv = ["waves", "resolve-alert", "pilot", "alert-0123", "--reason", "selector fixed, CHG-7"]
    assert main(argv, environ=app_environ) == 0
    assert "resolved critical alert alert-0123" in capsys.readouterr().out
    assert asyncio.run(open_critical_alerts(aio(stores.kv), "pilot")) == []
    [entry] = [
        e
        for e in stores.audit.list(limit=50)
        if e.action == "alert.resolve" and e.details.get("alertId") == "alert-0123"
    ]
    assert (entry.target, entry.reason) == ("pilot", "selector fixed, CHG-7")
    assert entry.actor.startswith("cli:")

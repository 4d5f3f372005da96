"""`waveguard silence add|list|expire` against Azurite: what the router then mutes, and what it does not."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.main import main
from shared.alerting import Alert
from shared.alerting.router import Notification, RouterDeps, route_alert
from shared.alerting.silences import NAMESPACE, StoredSilence, active_silences, list_silences
from shared.config import load_plan, load_settings
from shared.queues import MemoryQueues
from shared.state import StateStores, build_state

pytestmark = pytest.mark.functional

PLAN_SILENCES = """\
  silences:
    - matchers: ["wave=pilot", "alertname=RegistrationLagging"]
      endsAt: 2099-12-24T18:00:00Z
      comment: Pilot registration drive over the holidays; expected lag.
    - matchers: ["alertname=BreakGlassSignIn"]
      endsAt: 2020-01-01T00:00:00Z
      comment: DR exercise (long over).
"""


def _clear(stores: StateStores) -> None:
    for value in stores.kv.values(NAMESPACE):
        if isinstance(value, dict) and value.get("id"):
            stores.kv.delete(NAMESPACE, str(value["id"]))


@pytest.fixture
def stores(app_environ: dict[str, str]) -> Iterator[StateStores]:
    """The app's tables, with the run-time silences cleared before and after."""
    state = build_state(load_settings(app_environ))
    _clear(state)
    yield state
    _clear(state)


@pytest.fixture
def plan_environ(app_environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The example plan with two silences of its own: one in force, one long over."""
    text = Path("config/waveguard.yaml").read_text(encoding="utf-8")
    assert "  silences: []\n" in text
    path = tmp_path / "waveguard.yaml"
    path.write_text(text.replace("  silences: []\n", PLAN_SILENCES), encoding="utf-8")
    return {**app_environ, "WAVEGUARD_CONFIG": str(path)}


def _run(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), environ=env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _add(env: dict[str, str], capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = _run(
        env,
        capsys,
        "silence",
        "add",
        "--matcher",
        "alertname=RiskySignIn",
        "--matcher",
        "user=~.*@contoso\\.com",
        "--comment",
        "phishing drill this afternoon",
        *extra,
    )
    assert code == 0, err
    return out.strip()


def _active(stores: StateStores, env: dict[str, str]) -> list[object]:
    alerting = load_plan(Path(env["WAVEGUARD_CONFIG"]), env).alerting
    return asyncio.run(active_silences(alerting, stores.aio.kv, datetime.now(UTC)))


async def _no_delivery(notification: Notification) -> None:
    raise AssertionError(f"nothing is flushed in these tests: {notification.title}")


def test_add_prints_the_id_and_the_router_mutes_what_it_matches(
    stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    silence_id = _add(app_environ, capsys, "--duration", "2h", "--by", "jane")
    assert re.fullmatch(r"silence-[0-9a-f]{12}", silence_id)
    # the router's own view of what is muted now holds it
    [found] = [s for s in _active(stores, app_environ) if getattr(s, "id", None) == silence_id]
    assert isinstance(found, StoredSilence)
    assert [str(m) for m in found.matchers] == ["alertname=RiskySignIn", "user=~.*@contoso\\.com"]
    assert (found.comment, found.created_by) == ("phishing drill this afternoon", "jane")
    assert before - timedelta(seconds=1) <= found.starts_at <= datetime.now(UTC)
    assert abs(found.ends_at - found.starts_at - timedelta(hours=2)) < timedelta(seconds=1)
    # and the router mutes a matching alert, not another one
    plan = load_plan(Path(app_environ["WAVEGUARD_CONFIG"]), app_environ)
    deps = RouterDeps(plan.alerting, stores.aio, MemoryQueues(), _no_delivery)
    labels = {"alertname": "RiskySignIn", "user": "bob@contoso.com"}
    muted = Alert(key="risk:bob:RiskySignIn", severity="high", summary="risky", source="test", labels=labels)
    assert asyncio.run(route_alert(deps, muted, correlation_id="test-silenced")).outcome == "silenced"
    other = Alert(
        key="risk:bob:Other", severity="info", summary="x", source="test", labels={"alertname": "Other"}
    )
    assert asyncio.run(route_alert(deps, other, correlation_id="test-other")).outcome == "grouped"
    # audited: who, why, what
    [entry] = [
        e for e in stores.audit.list(limit=200) if e.action == "silence.add" and e.target == silence_id
    ]
    assert entry.reason == "phishing drill this afternoon"
    assert entry.actor.startswith("cli:")
    assert entry.details["matchers"] == ["alertname=RiskySignIn", "user=~.*@contoso\\.com"]
    assert entry.details["by"] == "jane"


def test_add_json_and_ends_at(
    stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ends = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    code, out, _ = _run(
        app_environ,
        capsys,
        "silence",
        "add",
        "--matcher",
        "wave = pilot",
        "--ends-at",
        ends.isoformat().replace("+00:00", "Z"),
        "--comment",
        "pilot freeze",
        "--json",
    )
    assert code == 0, out
    body = json.loads(out)
    assert set(body) == {
        "id",
        "matchers",
        "startsAt",
        "endsAt",
        "comment",
        "createdBy",
        "status",
        "fromPlan",
    }
    assert body["matchers"] == ["wave=pilot"]
    assert datetime.fromisoformat(body["endsAt"]) == ends
    assert (body["comment"], body["status"], body["fromPlan"]) == ("pilot freeze", "active", False)
    assert body["createdBy"].startswith("cli:")
    assert [s.id for s in asyncio.run(list_silences(stores.aio.kv))] == [body["id"]]


def _future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


BAD_OPTIONS: list[tuple[list[str], str]] = [
    # --matcher
    (["--duration", "1h", "--comment", "c"], "--matcher: give at least one"),
    (["--matcher", "alertname", "--duration", "1h", "--comment", "c"], "--matcher: expected label=value"),
    (["--matcher", "alertname=~(", "--duration", "1h", "--comment", "c"], "--matcher: invalid regex"),
    (["--matcher", "9x=1", "--duration", "1h", "--comment", "c"], "--matcher: expected label=value"),
    (
        ["--matcher", "alertname!=X", "--duration", "1h", "--comment", "c"],
        "--matcher: alertname!=X also match",
    ),
    (["--matcher", "wave=~.*", "--duration", "1h", "--comment", "c"], "--matcher: wave=~.* also match"),
    # --comment
    (["--matcher", "alertname=X", "--duration", "1h"], "--comment: say why"),
    (["--matcher", "alertname=X", "--duration", "1h", "--comment", "   "], "--comment: say why"),
    # --duration
    (["--matcher", "alertname=X", "--duration", "0h", "--comment", "c"], "--duration: must be longer than 0"),
    (["--matcher", "alertname=X", "--duration=-2h", "--comment", "c"], "--duration: must be longer than 0"),
    (["--matcher", "alertname=X", "--duration", "91d", "--comment", "c"], "--duration: at most 90 days"),
    (["--matcher", "alertname=X", "--duration", "13w", "--comment", "c"], "--duration: at most 90 days"),
    (
        ["--matcher", "alertname=X", "--duration", "2 hours", "--comment", "c"],
        "--duration: expected a duration",
    ),
    # --ends-at
    (["--matcher", "alertname=X", "--ends-at", "2020-01-01T00:00:00Z", "--comment", "c"], "--ends-at: "),
    (["--matcher", "alertname=X", "--ends-at", "2099-01-01T00:00:00", "--comment", "c"], "needs a time zone"),
    (["--matcher", "alertname=X", "--ends-at", "tomorrow", "--comment", "c"], "--ends-at: expected an ISO"),
    (["--matcher", "alertname=X", "--ends-at", _future(91), "--comment", "c"], "more than 90 days away"),
    # neither or both of --duration / --ends-at
    (["--matcher", "alertname=X", "--comment", "c"], "--duration/--ends-at: give how long"),
    (
        ["--matcher", "alertname=X", "--duration", "1h", "--ends-at", _future(1), "--comment", "c"],
        "--duration/--ends-at: give one of them, not both",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS])
def test_a_bad_option_exits_2_naming_it_and_adds_nothing(
    argv: list[str],
    message: str,
    stores: StateStores,
    app_environ: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(app_environ, capsys, "silence", "add", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert asyncio.run(list_silences(stores.aio.kv)) == []


def test_an_end_in_the_past_is_named_as_such(
    app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--matcher", "alertname=X", "--ends-at", "2020-01-01T00:00:00Z", "--comment", "c"]
    code, _, err = _run(app_environ, capsys, "silence", "add", *argv)
    assert code == 2
    assert "error: --ends-at: '2020-01-01T00:00:00Z' is in the past" in err


def test_list_shows_the_silences_in_force_with_the_plans_marked(
    stores: StateStores, plan_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    silence_id = _add(plan_environ, capsys, "--duration", "1d")
    code, out, _ = _run(plan_environ, capsys, "silence", "list", "--json")
    assert code == 0
    body = json.loads(out)
    assert list(body) == ["silences"]
    # soonest ending first: the run-time one (a day), then the plan's (2099); the plan's ended one
    # is not shown
    runtime, planned = body["silences"]
    assert (runtime["id"], runtime["fromPlan"], runtime["status"]) == (silence_id, False, "active")
    assert planned == {
        "id": "plan:0",
        "matchers": ["wave=pilot", "alertname=RegistrationLagging"],
        "startsAt": None,
        "endsAt": "2099-12-24T18:00:00+00:00",
        "comment": "Pilot registration drive over the holidays; expected lag.",
        "createdBy": "plan",
        "status": "active",
        "fromPlan": True,
    }
    # --all adds those over
    _, out, _ = _run(plan_environ, capsys, "silence", "list", "--all", "--json")
    assert [(s["id"], s["status"]) for s in json.loads(out)["silences"]] == [
        ("plan:1", "expired"),
        (silence_id, "active"),
        ("plan:0", "active"),
    ]
    # in text, the plan's say so
    code, out, _ = _run(plan_environ, capsys, "silence", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "STARTS", "(UTC)", "ENDS", "(UTC)", "BY"]
    assert lines[1].startswith(f"{silence_id} active")
    assert lines[2] == "    alertname=RiskySignIn user=~.*@contoso\\.com  # phishing drill this afternoon"
    assert lines[3].startswith("plan:0")
    assert lines[3].endswith("plan")
    assert "2099-12-24 18:00" in lines[3]
    assert all(len(line) <= 100 for line in lines)
    assert lines[4].startswith("    wave=pilot alertname=RegistrationLagging  # Pilot registration drive")
    assert lines[4].endswith("…")


def test_list_with_nothing_in_force(
    stores: StateStores, app_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(app_environ, capsys, "silence", "list")
    assert (code, out.strip()) == (0, "no silences in force (--all lists the expired ones)")
    code, out, _ = _run(app_environ, capsys, "silence", "list", "--json")
    assert json.loads(out) == {"silences": []}


def test_expire_ends_a_silence_now_and_the_plans_are_left_to_the_plan(
    stores: StateStores, plan_environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    silence_id = _add(plan_environ, capsys, "--duration", "4h")
    other_id = _add(plan_environ, capsys, "--duration", "3h")
    assert {silence_id, other_id} <= {getattr(s, "id", None) for s in _active(stores, plan_environ)}
    # by a prefix of its hex part
    code, out, _ = _run(plan_environ, capsys, "silence", "expire", silence_id.removeprefix("silence-")[:8])
    assert code == 0, out
    assert out.startswith(f"expired {silence_id} (alertname=RiskySignIn")
    active_ids = {getattr(s, "id", None) for s in _active(stores, plan_environ)}
    assert silence_id not in active_ids
    assert other_id in active_ids
    _, out, _ = _run(plan_environ, capsys, "silence", "list", "--json")
    assert silence_id not in {s["id"] for s in json.loads(out)["silences"]}
    _, out, _ = _run(plan_environ, capsys, "silence", "list", "--all", "--json")
    [listed] = [s for s in json.loads(out)["silences"] if s["id"] == silence_id]
    assert listed["status"] == "expired"
    # again: nothing to do
    code, out, _ = _run(plan_environ, capsys, "silence", "expire", silence_id, "--json")
    assert code == 0
    body = json.loads(out)
    assert list(body) == ["changed", "silence"]
    assert body["changed"] is False
    assert (body["silence"]["id"], body["silence"]["status"]) == (silence_id, "expired")
    # audited once, with the reason given
    code, _, _ = _run(plan_environ, capsys, "silence", "expire", other_id, "--comment", "drill cancelled")
    assert code == 0
    expired = [e for e in stores.audit.list(limit=200) if e.action == "silence.expire"]
    assert sorted(e.target for e in expired if e.target in (silence_id, other_id)) == sorted(
        [silence_id, other_id]
    )
    [cancelled] = [e for e in expired if e.target == other_id]
    assert cancelled.reason == "drill cancelled"
    # the plan's silences: edit the plan
    code, _, err = _run(plan_environ, capsys, "silence", "expire", "plan:0")
    assert code == 2
    assert "id 'plan:0' is one of the plan's silences (alerting.silences): edit the plan" in err
    # unknown, too short
    code, _, err = _run(plan_environ, capsys, "silence", "expire", "silence-000000000000")
    assert code == 2
    assert "error: id 'silence-000000000000': no such silence" in err
    code, _, err = _run(plan_environ, capsys, "silence", "expire", "ab")
    assert code == 2
    assert "id 'ab': give at least 4 characters" in err

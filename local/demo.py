"""The live demo `make run` shows once the stack is healthy: what WaveGuard can do so far."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx

from cli.main import main as waveguard_cli
from local.demo_announcements import show_announcements
from local.demo_feedback import show_helpdesk_ticket, write_rollout_report
from local.demo_groups import show_group_change
from local.demo_risk import show_risk_to_on_call
from local.demo_waves import show_wave_promotion
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import RolloutPlan, Settings, load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.graph.directory import find_group, iter_users
from shared.rollout.break_glass import verify_break_glass

_SETTINGS_FILE = Path(__file__).resolve().parent / "local.settings.json"


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def show_health(host_url: str) -> None:
    _title(f"1. Health: GET {host_url}/api/health")
    with urllib.request.urlopen(f"{host_url}/api/health", timeout=10) as resp:
        body = json.loads(resp.read())
        print(f"HTTP {resp.status}: {body['status']}   (anonymous callers learn nothing more)")
    key = json.loads(_SETTINGS_FILE.read_text("utf-8")).get("FunctionKeys", {}).get("default", "")
    print("  GET /api/health/details with the function key:")
    with urllib.request.urlopen(f"{host_url}/api/health/details?code={key}", timeout=10) as resp:
        details = json.loads(resp.read())
    for name, check in details["checks"].items():
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"  {name:<8} {mark} {check['latency_ms']:>7.1f} ms  {check['detail']}")


def show_plan(settings: Settings) -> RolloutPlan:
    plan = load_plan_for(settings)
    _title(f"2. The rollout plan: {settings.config_path.name}")
    print(f"  {'wave':<16} {'target group':<38} {'selectors':<34} promotion")
    for wave in plan.waves:
        sel = wave.selectors
        parts = [
            f"{label}: {', '.join(values)}"
            for label, values in (
                ("groups", sel.groups),
                ("depts", sel.departments),
                ("countries", sel.countries),
            )
            if values
        ]
        selectors = "everyone else (catch-all)" if wave.catch_all else "; ".join(parts)
        group = wave.group.display_name or str(wave.group.id)
        print(f"  {wave.name:<16} {group:<38} {selectors:<34} {wave.promotion}")
    accounts = ", ".join(a.user_principal_name or str(a.id) for a in plan.break_glass.accounts)
    print(f"  break-glass: {accounts}")
    exclusion = plan.break_glass.exclusion_group
    print(f"  exclusion group: {exclusion.display_name or exclusion.id}")
    return plan


async def _show_tenant(settings: Settings, plan: RolloutPlan) -> None:
    client = build_graph_client(settings)
    by_department: Counter[str] = Counter()
    async for user in iter_users(client, select=("id", "department")):
        by_department[user.department or "(none)"] += 1
    total = sum(by_department.values())
    print(
        f"  {total} users, paged from /users: "
        + ", ".join(f"{d} {n}" for d, n in by_department.most_common())
    )
    report = await verify_break_glass(client, plan.break_glass)
    for account in report.accounts:
        state = "in the exclusion group" if account.in_exclusion_group else "NOT in the exclusion group"
        print(
            f"  break-glass {account.configured_as}: {'found' if account.object_id else 'MISSING'}, {state}"
        )
    for wave in plan.waves:
        group = await find_group(client, group_id=wave.group.id, display_name=wave.group.display_name)
        state = f"exists ({group.id})" if group else "not created yet"
        print(f"  wave {wave.name:<16} target group {state}")


def show_tenant(settings: Settings, plan: RolloutPlan) -> None:
    _title(f"3. The tenant through WaveGuard's Graph client ({settings.graph_base_url})")
    asyncio.run(_show_tenant(settings, plan))


def show_doctor(environ: Mapping[str, str]) -> None:
    _title("4. The operator CLI: waveguard doctor")
    waveguard_cli(["doctor"], environ=environ)


# (first name, last name, department, country): one per wave, one of them provisioned late.
DEMO_HIRES: tuple[tuple[str, str, str, str], ...] = (
    ("Ada", "Newhire", "Finance", "GB"),
    ("Linus", "Newhire", "IT", "NL"),
    ("Grace", "Newhire", "Sales", "US"),
    ("Alan", "Newhire", "Legal", "DE"),
)
LATE_HIRE = 3  # index of the hire Entra creates 5 s after HR's webhook


def _signed_post(client: httpx.Client, url: str, secret: str, event: dict[str, Any]) -> httpx.Response:
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(event)
    msg_id = f"msg_{secrets.token_hex(12)}"
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return client.post(url, content=body, headers=headers)


def _head_of(graph: httpx.Client, department: str) -> dict[str, Any]:
    """The department's head: the manager of one of its people (as in the demo tenant)."""
    people = graph.get("/users", params={"$filter": f"department eq '{department}'", "$top": "5"}).json()[
        "value"
    ]
    for person in people:
        manager = graph.get(
            f"/users/{person['id']}/manager", params={"$select": "id,userPrincipalName,mail,department"}
        )
        if manager.status_code == 200 and manager.json().get("department") == department:
            return dict(manager.json())
    raise RuntimeError(f"no head of {department} in the tenant")


def _hire_event(index: int, suffix: str, manager: str) -> dict[str, Any]:
    first, last, department, country = DEMO_HIRES[index]
    return {
        "type": "employee.hired",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {
            "employeeId": f"E8{suffix}{index}",
            "userPrincipalName": f"{first.lower()}.{last.lower()}{suffix}@contoso.com",
            "displayName": f"{first} {last}",
            "department": department,
            "country": country,
            "managerUserPrincipalName": manager,
            "hireDate": datetime.now(UTC).date().isoformat(),
        },
    }


def _effects(graph: httpx.Client, admin: httpx.Client, user_id: str, upn: str) -> dict[str, Any] | None:
    """What the worker did for one hire, once the manager's e-mail is in the outbox and the hire in
    its wave group (joined right after the e-mail); else None."""
    mails = [m for m in admin.get("/outbox").json()["value"] if upn in m["body"]]
    if not mails:
        return None
    groups = graph.get(f"/users/{user_id}/memberOf").json()["value"]
    wave_groups = [
        g["displayName"] for g in groups if str(g.get("displayName", "")).startswith("WaveGuard - Wave")
    ]
    if not wave_groups:
        return None
    taps = admin.get("/taps", params={"userId": user_id}).json()["value"]
    return {"mails": mails, "taps": taps[0]["taps"] if taps else [], "groups": wave_groups}


def show_new_hires(host_url: str, settings: Settings, environ: Mapping[str, str]) -> None:
    _title(f"5. New hires: signed webhooks to {host_url}/api/hr/events")
    base = settings.graph_base_url.rstrip("/")
    admin_url = base.rsplit("/", 1)[0] + "/_emulator"
    secret = environ["WAVEGUARD_HR_WEBHOOK_SECRET"]
    suffix = f"{secrets.randbelow(1000):03d}"
    with (
        httpx.Client(base_url=base, timeout=10, headers=ADMIN_HEADERS) as graph,
        httpx.Client(base_url=admin_url, timeout=10) as admin,
        httpx.Client(timeout=10) as ingress,
    ):
        pending: list[tuple[dict[str, Any], str, str]] = []
        for index, (_, _, department, _) in enumerate(DEMO_HIRES):
            manager = _head_of(graph, department)
            event = _hire_event(index, suffix, manager["userPrincipalName"])
            data = event["data"]
            # HR-driven provisioning creates the account; one of them lags the webhook by 5 s.
            user = {
                k: data[k]
                for k in ("userPrincipalName", "displayName", "employeeId", "department", "country")
            }
            user |= {"mail": data["userPrincipalName"], "manager": manager["id"]}
            if index == LATE_HIRE:
                user["visibleAfterSeconds"] = 5
            user_id = admin.post("/users", json=user).json()["id"]
            answer = _signed_post(ingress, f"{host_url}/api/hr/events", secret, event)
            late = "  (Entra account appears 5 s later)" if index == LATE_HIRE else ""
            print(f"  POST {data['displayName']:<16} {department:<8} -> HTTP {answer.status_code}{late}")
            pending.append((data, user_id, str(answer.json().get("id", ""))))
        print("  waiting for the hr-events worker ...", flush=True)
        _summarise(graph, admin, pending, settings)


def _summarise(
    graph: httpx.Client,
    admin: httpx.Client,
    pending: list[tuple[dict[str, Any], str, str]],
    settings: Settings,
) -> None:
    deadline = time.monotonic() + 30
    done: dict[str, dict[str, Any]] = {}
    # The late hire waits for the plan's first re-check (60 s in the example): not waited for here.
    expected = {user_id for index, (_, user_id, _) in enumerate(pending) if index != LATE_HIRE}
    while not expected <= set(done) and time.monotonic() < deadline:
        for data, user_id, _ in pending:
            if user_id not in done:
                effects = _effects(graph, admin, user_id, data["userPrincipalName"])
                if effects is not None:
                    done[user_id] = effects
        time.sleep(0.5)
    for data, user_id, envelope_id in pending:
        print(f"  {data['displayName']} ({data['department']}, {data['country']}, {data['employeeId']})")
        effects = done.get(user_id)
        if effects is None:
            print(f"     {_waiting_text(settings, envelope_id)}")
            continue
        print(f"     wave group  {', '.join(effects['groups']) or '(none)'}")
        print(f"     TAP         {_tap_text(effects['taps'])}")
        mail = effects["mails"][0]
        to = ", ".join(r["address"] for r in mail["to"])
        print(
            f"     e-mail      {mail['subject']!r} to {to} from {mail['from']} ({len(effects['mails'])} sent)"
        )


def _waiting_text(settings: Settings, envelope_id: str) -> str:
    """Where a hire not onboarded yet stands, from the worker's progress record."""
    from shared.onboarding import hire_progress
    from shared.state import build_state

    progress = hire_progress(build_state(settings).idempotency, envelope_id) if envelope_id else None
    if progress is not None and progress.next_check_at:
        when = progress.next_check_at[11:19]
        return (
            f"not in Entra yet: re-check #{progress.attempts} scheduled for {when} UTC "
            "(newHires.provisioningRetry); the e-mail follows then"
        )
    return "still in progress (see the host log)"


def _tap_text(taps: list[dict[str, Any]]) -> str:
    usable = [t for t in taps if not t.get("deletedDateTime")]
    if not usable:
        return "none usable"
    tap = usable[-1]
    once = "single use" if tap.get("isUsableOnce") else "reusable"
    start = str(tap.get("startDateTime") or tap.get("createdDateTime"))[:16].replace("T", " ")
    minutes = tap.get("lifetimeInMinutes")
    return f"from {start} UTC for {minutes} min, {once}; {len(taps)} issued (the value is only in the e-mail)"


def run_demo(*, host_url: str, environ: Mapping[str, str], cli: str = "waveguard") -> None:
    """Print each demo step; a failing step is reported and the demo goes on. ``cli`` starts the
    CLI commands the steps suggest (with ``--settings`` when the stack's ports moved)."""
    settings = load_settings(environ)
    plan: RolloutPlan | None = None

    def step(name: str, action: Callable[[], object]) -> object:
        try:
            return action()
        except Exception as exc:  # the demo goes on; the stack keeps serving
            print(f"  demo step '{name}' failed: {type(exc).__name__}: {exc}", flush=True)
            return None

    step("health", lambda: show_health(host_url))
    plan = cast("RolloutPlan | None", step("plan", lambda: show_plan(settings)))
    if plan is not None:
        step("tenant", lambda: show_tenant(settings, plan))
    step("doctor", lambda: show_doctor(environ))
    step("new hires", lambda: show_new_hires(host_url, settings, environ))
    step("announcements", lambda: show_announcements(settings, environ))
    step("wave promotion", lambda: show_wave_promotion(settings, environ, cli=cli))
    step("group changes", lambda: show_group_change(environ))
    step("risk to on-call", lambda: show_risk_to_on_call(environ, cli=cli))
    step("helpdesk ticket", lambda: show_helpdesk_ticket(host_url, environ))
    step("rollout report", lambda: write_rollout_report(environ))
    print(flush=True)

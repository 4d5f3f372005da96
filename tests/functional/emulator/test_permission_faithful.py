"""Removing any one permission breaks exactly the features docs/permissions.md says depend on it.

One probe per feature drives WaveGuard's real code for it (``shared/``: the Graph client with its
middleware, the directory, group, TAP, mail and CA helpers, the gates' evidence, the subscription
sync, the risk port and response calls) against an in-process emulator. The emulator is granted the
union of every entry of ``infra/graph-permissions.json``, minus one permission, for each permission
in turn; the set of failing probes must equal that permission's row of the table "What stops
working without each permission" in docs/permissions.md (and with every permission, none fails).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient

from local.graph_emulator import BREAK_GLASS_UPNS, SERVICE_MAILBOX_UPN, IdentityProtectionBudget
from local.graph_emulator.app import Emulator, EmulatorConfig
from local.graph_emulator.permissions import all_permissions
from local.graph_emulator.transport import emulator_transport
from shared.config import RolloutPlan, load_plan_for, load_settings
from shared.graph import build_graph_client
from shared.graph.batch import BatchClient
from shared.graph.client import get_json
from shared.graph.conditional_access import ConditionalAccessApi
from shared.graph.directory import find_group, find_user, iter_users
from shared.graph.groups import add_member, create_security_group, delete_group, remove_member
from shared.graph.hire_reads import find_and_read_hire, read_hire
from shared.graph.mail import MailMessage, create_draft, message_state, send_draft, send_mail
from shared.graph.tap import create_tap, list_taps
from shared.group_changes.delta import read_group_delta
from shared.group_changes.subscriptions import SubscriptionDeps, sync_subscriptions
from shared.risk.graph_port import GraphPort, client_port
from shared.risk.responses import ACTIONS
from shared.rollout.lifecycle.graph_evidence import GraphEvidence
from shared.rollout.permfa import read_states
from shared.rollout.permfa.writer import StateWriter
from shared.rollout.policies.preflight import tenant_preflight
from shared.state import build_memory_state
from tests.conftest import PLAN_SECRETS
from tests.receiver import receiver

pytestmark = pytest.mark.functional

DOC = Path(__file__).resolve().parents[3] / "docs" / "permissions.md"
SECTION = "## What stops working without each permission"
BASE = "http://127.0.0.1:9/v1.0"


@dataclass
class Context:
    """What a probe needs: WaveGuard's Graph client, its plan, the risk port, the demo's ids."""

    emulator: Emulator
    client: GraphServiceClient
    plan: RolloutPlan
    port: GraphPort
    notification_url: str
    user_id: str
    user_upn: str
    pilot_group_id: str


Probe = Callable[[Context], Awaitable[None]]


async def hire_lookup(ctx: Context) -> None:
    found = await find_user(ctx.client, ctx.user_upn)
    assert found is not None
    await read_hire(ctx.client, ctx.user_id)
    # as a hire is found: the employeeId look-up and the reads by UPN in one $batch
    located = await find_and_read_hire(ctx.client, found.employee_id or "E-probe", ctx.user_upn)
    assert located is not None


async def wave_selectors(ctx: Context) -> None:
    assert [u async for u in iter_users(ctx.client, odata_filter="department eq 'Finance'")]


async def wave_group_create(ctx: Context) -> None:
    group_id = await create_security_group(
        ctx.client, f"WaveGuard - probe {uuid.uuid4().hex[:6]}", description="p"
    )
    assert await delete_group(ctx.client, group_id) is True  # as its owner: a duplicate from a lost race


async def wave_sync(ctx: Context) -> None:
    await add_member(ctx.client, ctx.pilot_group_id, ctx.user_id)
    await remove_member(ctx.client, ctx.pilot_group_id, ctx.user_id)


async def group_read(ctx: Context) -> None:
    assert await find_group(ctx.client, group_id=ctx.pilot_group_id) is not None
    await GraphEvidence(ctx.client, ctx.plan).wave_members(ctx.plan.waves[0].name)
    await read_group_delta(ctx.client, ctx.pilot_group_id, None)


async def group_subscriptions(ctx: Context) -> None:
    deps = SubscriptionDeps(ctx.plan, ctx.client, build_memory_state().aio)
    statuses = await sync_subscriptions(deps, correlation_id="probe")
    assert statuses
    failed = [(s.group_id, s.detail) for s in statuses if s.action == "failed"]
    assert failed == []


async def tap_issue(ctx: Context) -> None:
    await create_tap(ctx.client, ctx.user_id, lifetime_minutes=60, is_usable_once=True)
    assert await list_taps(ctx.client, ctx.user_id)


async def tap_mail(ctx: Context) -> None:
    message = MailMessage(subject="Your Temporary Access Pass", body="probe", to=[ctx.user_upn])
    draft = await create_draft(ctx.client, SERVICE_MAILBOX_UPN, message, tag=uuid.uuid4().hex)
    assert await message_state(ctx.client, SERVICE_MAILBOX_UPN, draft) is not None
    await send_draft(ctx.client, SERVICE_MAILBOX_UPN, draft)


async def nudge_mail(ctx: Context) -> None:
    await send_mail(
        ctx.client, SERVICE_MAILBOX_UPN, MailMessage(subject="Register MFA", body="p", to=[ctx.user_upn])
    )


async def ca_read(ctx: Context) -> None:
    await ConditionalAccessApi(ctx.client, min_interval=0).list_policies()


async def ca_write(ctx: Context) -> None:
    api = ConditionalAccessApi(ctx.client, min_interval=0)
    demo = ctx.emulator.demo
    assert demo is not None
    created = await api.create_policy(
        {
            "displayName": f"WaveGuard - probe {uuid.uuid4().hex[:6]}",
            "state": "enabledForReportingButNotEnforced",
            "conditions": {
                "applications": {"includeApplications": ["All"]},
                "users": {
                    "includeGroups": [ctx.pilot_group_id],
                    "excludeUsers": list(demo.break_glass_ids),
                    "excludeGroups": [demo.break_glass_group_id],
                },
                "clientAppTypes": ["all"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        }
    )
    await api.update_policy(str(created["id"]), {"state": "enabledForReportingButNotEnforced"})


async def registration_gate(ctx: Context) -> None:
    await GraphEvidence(ctx.client, ctx.plan).registered_users()


async def signin_gate(ctx: Context) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    await GraphEvidence(ctx.client, ctx.plan).report_only_sign_ins("WaveGuard - probe", since=since)


async def risk_detections(ctx: Context) -> None:
    await ctx.port.get("/identityProtection/riskDetections?$top=10")


async def risky_users(ctx: Context) -> None:
    await ctx.port.get("/identityProtection/riskyUsers?$top=10")


async def risk_confirm(ctx: Context) -> None:
    path, body = ACTIONS["confirmCompromised"][2](ctx.user_id)
    await ctx.port.post(path, body)


async def revoke_sessions(ctx: Context) -> None:
    path, body = ACTIONS["revokeSessions"][2](ctx.user_id)
    await ctx.port.post(path, body)


async def tenant_preflight_reads(ctx: Context) -> None:
    preflight = await tenant_preflight(lambda path: get_json(ctx.client, path))
    unreadable = [f.detail for f in preflight.findings if f.detail.startswith("could not read")]
    if unreadable:
        raise PermissionError("; ".join(unreadable))


async def per_user_mfa_read(ctx: Context) -> None:
    states = await read_states(BatchClient.for_graph(ctx.client, version="beta"), [ctx.user_id])
    if states[ctx.user_id].state == "unknown":
        raise PermissionError(states[ctx.user_id].error)


async def per_user_mfa_write(ctx: Context) -> None:
    writer = StateWriter(BatchClient.for_graph(ctx.client, version="beta"))
    result = await writer.apply({ctx.user_id: "disabled"})
    if result.failed:
        raise PermissionError(result.failed[ctx.user_id])


PROBES: dict[str, Probe] = {
    "hire-lookup": hire_lookup,
    "wave-selectors": wave_selectors,
    "wave-group-create": wave_group_create,
    "wave-sync": wave_sync,
    "group-read": group_read,
    "group-subscriptions": group_subscriptions,
    "tap-issue": tap_issue,
    "tap-mail": tap_mail,
    "nudge-mail": nudge_mail,
    "ca-read": ca_read,
    "ca-write": ca_write,
    "registration-gate": registration_gate,
    "signin-gate": signin_gate,
    "risk-poll": risk_detections,
    "risky-users-poll": risky_users,
    "risk-confirm": risk_confirm,
    "revoke-sessions": revoke_sessions,
    "tenant-preflight": tenant_preflight_reads,
    "per-user-mfa-read": per_user_mfa_read,
    "per-user-mfa-write": per_user_mfa_write,
}


def documented_breakage() -> dict[str, set[str]]:
    """The docs table: permission -> the features that stop working without it."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/permissions.md lacks the section {SECTION!r}"
    table = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Za-z][\w\-]*\.[\w.\-]+)`", cells[0]) if len(cells) >= 2 else None
        if match is None:
            continue
        rows[match.group(1)] = set(re.findall(r"`([a-z][a-z\-]+)`", cells[1]))
    return rows


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Emulator, str]]:
    """One in-process emulator (demo tenant, no Identity Protection pacing) and a validation endpoint."""
    config = EmulatorConfig(seed="demo", identity_protection_budget=IdentityProtectionBudget.from_json(False))
    with receiver() as endpoint:
        yield Emulator(config), endpoint.url


async def _failing(emulator: Emulator, notification_url: str) -> set[str]:
    environ = {**PLAN_SECRETS, "GRAPH_BASE_URL": BASE, "WAVEGUARD_CONFIG": "config/waveguard.yaml"}
    settings = load_settings({**environ, "WAVEGUARD_NOTIFICATION_URL": notification_url})
    plan = load_plan_for(settings)
    demo = emulator.demo
    assert demo is not None
    user = next(
        u
        for u in emulator.store.users.values()
        if u.get("department") == "Finance" and u["id"] not in demo.head_ids.values()
    )
    failing: set[str] = set()
    async with httpx.AsyncClient(transport=emulator_transport(emulator)) as http:
        client = build_graph_client(settings, http_client=http, max_retries=0, break_glass=plan.break_glass)
        ctx = Context(
            emulator=emulator,
            client=client,
            plan=plan,
            port=client_port(client, spacing=0.0),
            notification_url=notification_url,
            user_id=str(user["id"]),
            user_upn=str(user["userPrincipalName"]),
            pilot_group_id=demo.it_pilot_group_id,
        )
        for feature, probe in PROBES.items():
            try:
                await probe(ctx)
            except Exception:  # a refused call surfaces as the app's own error, whichever it is
                failing.add(feature)
    return failing


def _run_with(world: tuple[Emulator, str], granted: frozenset[str]) -> set[str]:
    emulator, url = world
    emulator.reset(replace(emulator.startup_config, permissions=granted))
    return asyncio.run(_failing(emulator, url))


def test_the_docs_table_names_every_permission_and_only_known_features() -> None:
    rows = documented_breakage()
    assert set(rows) == set(all_permissions())
    assert set().union(*rows.values()) <= set(PROBES)
    table = DOC.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    vocabulary = set(re.findall(r"^\| `([a-z][a-z\-]+)` \|", table, re.MULTILINE))
    assert vocabulary == set(PROBES)


def _raw(emulator: Emulator, method: str, path: str, body: object = None) -> tuple[int, Any]:
    with httpx.Client(transport=emulator_transport(emulator), base_url="http://127.0.0.1:9/v1.0") as http:
        answer = http.request(method, path, json=body)
        return answer.status_code, answer.json() if answer.content else None


def test_a_batch_needs_no_permission_and_answers_each_refused_item_403(world: tuple[Emulator, str]) -> None:
    emulator, _ = world
    emulator.reset(replace(emulator.startup_config, permissions=frozenset({"User.Read.All"})))
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/users?$top=1"},
            {"id": "2", "method": "GET", "url": "/groups?$top=1"},
        ]
    }
    status, body = _raw(emulator, "POST", "/$batch", batch)
    assert status == 200
    answers = {item["id"]: item for item in body["responses"]}
    assert answers["1"]["status"] == 200
    assert answers["2"]["status"] == 403
    assert answers["2"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    logged = [(e["path"], e["status"]) for e in emulator.requests.entries()]
    assert ("/v1.0/groups", 403) in logged


def test_group_create_may_change_only_the_groups_the_app_created(world: tuple[Emulator, str]) -> None:
    emulator, _ = world
    emulator.reset(
        replace(emulator.startup_config, permissions=frozenset({"Group.Create", "GroupMember.ReadWrite.All"}))
    )
    demo = emulator.demo
    assert demo is not None
    new = {"displayName": "Probe", "mailEnabled": False, "mailNickname": "probe", "securityEnabled": True}
    status, created = _raw(emulator, "POST", "/groups", new)
    assert status == 201
    # the app's own group: renamed and deleted with Group.Create
    assert _raw(emulator, "PATCH", f"/groups/{created['id']}", {"displayName": "Probe 2"})[0] == 204
    assert _raw(emulator, "DELETE", f"/groups/{created['id']}")[0] == 204
    assert _raw(emulator, "DELETE", f"/groups/{created['id']}")[0] == 404
    # someone else's group: no rename, no delete; adding members is GroupMember.ReadWrite.All's
    pilot = demo.it_pilot_group_id
    assert _raw(emulator, "PATCH", f"/groups/{pilot}", {"displayName": "Renamed"})[0] == 403
    assert _raw(emulator, "DELETE", f"/groups/{pilot}")[0] == 403
    bind = {"members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{demo.ceo_id}"]}
    assert _raw(emulator, "PATCH", f"/groups/{pilot}", bind)[0] == 204


def test_the_admin_reset_sets_the_permissions_and_state_shows_them(world: tuple[Emulator, str]) -> None:
    emulator, _ = world
    with httpx.Client(transport=emulator_transport(emulator), base_url="http://127.0.0.1:9") as http:
        state = http.post("/_emulator/reset", json={"permissions": ["User.Read.All"]}).json()
        assert state["permissions"] == ["User.Read.All"]
        assert http.get("/v1.0/groups").status_code == 403
        assert http.get("/v1.0/groups", headers={"x-emulator-caller": "tenant-admin"}).status_code == 200
        assert http.post("/_emulator/reset", json={"permissions": "nope"}).status_code == 400
        infra = http.post("/_emulator/reset", json={"permissions": "infra"}).json()["permissions"]
        assert "IdentityRiskyUser.ReadWrite.All" not in infra
        assert BREAK_GLASS_UPNS  # the probes above never touch a break-glass account


def test_with_every_permission_every_feature_works(world: tuple[Emulator, str]) -> None:
    assert _run_with(world, all_permissions()) == set()


@pytest.mark.parametrize("permission", sorted(all_permissions()))
def test_removing_one_permission_breaks_exactly_the_documented_features(
    world: tuple[Emulator, str], permission: str
) -> None:
    # GIVEN every permission of infra/graph-permissions.json but this one
    granted = all_permissions() - {permission}
    # WHEN each feature's real code runs against the emulator
    failing = _run_with(world, granted)
    # THEN exactly the features docs/permissions.md lists for it stop working
    assert failing == documented_breakage()[permission]

"""`waveguard policies plan|apply`: the Conditional Access baseline as code, with its safety lint.

Exit codes (for CI, like ``terraform plan -detailed-exitcode``):
  0  nothing to do (plan) / applied or nothing to apply (apply)
  1  the lint failed, or an error (Graph, storage, configuration); nothing was written
  2  usage error
  3  ``plan`` found changes to apply
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.config import RolloutPlan, load_plan_for, load_settings
from shared.errors import WaveGuardError
from shared.rollout.group_drift import GroupDrift
from shared.rollout.policies import (
    ApplyResult,
    PolicyApi,
    PolicyPlan,
    ReferenceLookup,
    TenantIds,
    apply_lock,
    apply_policy_plan,
    build_policy_plan,
)
from shared.rollout.policies.baseline import schedule_soak_resync
from shared.rollout.policies.preflight import Preflight
from shared.state import AsyncAuditPort, AsyncIdempotencyPort, AsyncKeyValuePort

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CHANGES: Final = 3

_MARKS: Final = {"create": "+ create   ", "update": "~ update   ", "unchanged": "= unchanged"}


async def _no_drift() -> list[GroupDrift]:
    return []


async def _no_preflight() -> Preflight:
    return Preflight(())


async def _no_renames(drifts: list[GroupDrift], actor: str, correlation_id: str) -> list[GroupDrift]:
    return []


@dataclass(frozen=True, slots=True)
class PolicyDeps:
    """What the commands work with; built from the environment, or fakes in unit tests."""

    plan: RolloutPlan
    api: PolicyApi
    lookup: ReferenceLookup
    resolve_tenant: Callable[[], Awaitable[TenantIds]]
    kv: AsyncKeyValuePort
    audit: AsyncAuditPort
    idempotency: AsyncIdempotencyPort
    # Wave groups named otherwise in the tenant than in the plan, and how to rename them.
    group_drift: Callable[[], Awaitable[list[GroupDrift]]] = _no_drift
    rename_groups: Callable[[list[GroupDrift], str, str], Awaitable[list[GroupDrift]]] = _no_renames
    # Can the tenant take CA policies at all (security defaults, licences, authentication methods)?
    preflight: Callable[[], Awaitable[Preflight]] = _no_preflight


DepsFactory = Callable[[Mapping[str, str]], PolicyDeps]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "policies",
        help="plan or apply the Conditional Access baseline (exit 3: plan has changes)",
        description="The Conditional Access baseline as code. Exit codes: 0 nothing to do / applied, "
        "1 lint failed or error, 2 usage, 3 plan found changes.",
    )
    actions = p.add_subparsers(dest="policies_command", metavar="{plan,apply}", required=True)
    plan = actions.add_parser(
        "plan", help="show the diff (create/update/unchanged, field by field) and the lint"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(run=run_plan)
    apply = actions.add_parser(
        "apply", help="write the diff (new policies report-only); refuses if the lint fails"
    )
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    apply.add_argument("--json", action="store_true", help="print the plan and the result as JSON")
    apply.add_argument(
        "--accept-enforced-change",
        action="store_true",
        help="write edits that tighten enforcement for users already enforced (plan: 'affects "
        "enforced users now'): narrower countries, trusted ranges removed, more risk levels, block",
    )
    apply.set_defaults(run=run_apply)


def build_deps(env: Mapping[str, str]) -> PolicyDeps:
    """Graph client, CA API, reference lookup and state stores for this environment.

    Raises:
        ConfigError: the settings or the plan file are invalid.
    """
    from shared.graph import build_graph_client
    from shared.graph.client import get_json
    from shared.graph.conditional_access import ConditionalAccessApi
    from shared.rollout.group_drift import rename_drifted_groups, wave_group_drift
    from shared.rollout.policies.preflight import tenant_preflight
    from shared.rollout.policies.tenant import GraphReferenceLookup, resolve_tenant
    from shared.state import build_state

    settings = load_settings(env)
    plan = load_plan_for(settings)
    client = build_graph_client(settings)
    stores = build_state(settings).aio

    async def renames(drifts: list[GroupDrift], actor: str, correlation_id: str) -> list[GroupDrift]:
        return await rename_drifted_groups(
            client, drifts, audit=stores.audit, actor=actor, correlation_id=correlation_id
        )

    return PolicyDeps(
        plan=plan,
        api=ConditionalAccessApi(client),
        lookup=GraphReferenceLookup(client),
        resolve_tenant=lambda: resolve_tenant(client, plan),
        kv=stores.kv,
        audit=stores.audit,
        idempotency=stores.idempotency,
        group_drift=lambda: wave_group_drift(client, plan, stores.kv),
        rename_groups=renames,
        preflight=lambda: tenant_preflight(lambda path: get_json(client, path)),
    )


async def prepare(deps: PolicyDeps, preflight: Preflight | None = None) -> PolicyPlan:
    """Resolve the tenant's ids and build the plan (diff + lint; the preflight's licences let the
    lint refuse risk conditions on a tenant without Entra ID P2).

    Raises:
        WaveGuardError: Graph or the state store failed.
    """
    tenant = await deps.resolve_tenant()
    return await build_policy_plan(
        deps.plan,
        api=deps.api,
        lookup=deps.lookup,
        tenant=tenant,
        kv=deps.kv,
        licence_p2=preflight.licence_p2 if preflight is not None else None,
        licence_unreadable=preflight.licence_unreadable if preflight is not None else None,
    )


def plan_exit_code(policy_plan: PolicyPlan, preflight: Preflight | None = None) -> int:
    if not policy_plan.lint.ok or (preflight is not None and preflight.blocking):
        return EXIT_FAILED
    return EXIT_CHANGES if policy_plan.has_changes else EXIT_OK


def plan_to_json(policy_plan: PolicyPlan) -> dict[str, Any]:
    """The plan as a JSON document a pipeline can read."""
    changes = []
    for change in policy_plan.diff.changes:
        item: dict[str, Any] = {"action": change.kind, "displayName": change.name, "id": change.policy_id}
        if change.kind == "create":
            item["policy"] = {**change.desired.body, "state": "enabledForReportingButNotEnforced"}
        if change.desired.wave_driven:
            item["waves"] = sorted(change.desired.groups_by_wave)
        if change.fields:
            item["fields"] = [{"path": f.path, "old": f.old, "new": f.new} for f in change.fields]
        changes.append(item)
    findings = [
        {
            "check": f.check,
            "severity": f.severity,
            "scope": f.scope,
            "policy": f.policy,
            "field": f.field,
            "message": f.message,
        }
        for f in policy_plan.lint.findings
    ]
    return {
        "changes": changes,
        "summary": {kind: policy_plan.diff.count(kind) for kind in ("create", "update", "unchanged")},
        "notManaged": [str(p.get("displayName")) for p in policy_plan.diff.orphans],
        "namedLocations": _locations_to_json(policy_plan),
        "waves": {name: str(state) for name, state in policy_plan.wave_states.items()},
        "notes": list(policy_plan.notes),
        "affectsEnforcedUsersNow": list(policy_plan.enforced_changes),
        "soaking": [
            {
                "policy": soak.pair,
                "wave": soak.wave,
                "since": soak.since.isoformat() if soak.since else None,
                "due": soak.due.isoformat(),
            }
            for soak in policy_plan.soaking
        ],
        "lint": {"ok": policy_plan.lint.ok, "findings": findings},
    }


def _locations_to_json(policy_plan: PolicyPlan) -> dict[str, Any]:
    locations = policy_plan.locations
    changes = []
    for change in locations.changes:
        item: dict[str, Any] = {"action": change.kind, "displayName": change.name, "id": change.location_id}
        if change.kind == "create":
            item["location"] = change.desired.body
        if change.fields:
            item["fields"] = [{"path": f.path, "old": f.old, "new": f.new} for f in change.fields]
        changes.append(item)
    return {
        "changes": changes,
        "summary": {kind: locations.count(kind) for kind in ("create", "update", "unchanged")},
        "notManaged": [str(loc.get("displayName")) for loc in locations.orphans],
    }


def print_plan(policy_plan: PolicyPlan) -> None:
    waves = ", ".join(f"{name}={state}" for name, state in policy_plan.wave_states.items())
    print(f"WaveGuard policies plan (waves: {waves})")
    locations = policy_plan.locations
    for location in locations.changes:
        where = f"  [{location.location_id}]" if location.location_id else "  (new)"
        print(f"  {_MARKS[location.kind]} named location {location.name}{where}")
        for fc in location.fields:
            print(f"        {fc.path}: {_show(fc.old)} -> {_show(fc.new)}")
    for orphan in locations.orphans:
        name, location_id = orphan.get("displayName"), orphan.get("id")
        print(f"  ! named location not in the plan, left alone: {name}  [{location_id}]")
    for change in policy_plan.diff.changes:
        suffix = f"  [{change.policy_id}]" if change.policy_id else "  (new: report-only)"
        print(f"  {_MARKS[change.kind]} {change.name}{suffix}")
        for fc in change.fields:
            print(f"        {fc.path}: {_show(fc.old)} -> {_show(fc.new)}")
    for orphan in policy_plan.diff.orphans:
        print(f"  ! not in the plan, left alone: {orphan.get('displayName')}  [{orphan.get('id')}]")
    for soak in policy_plan.soaking:
        print(f"  . soaking: {soak}")
    for note in policy_plan.notes:
        print(f"  ! {note}")
    for line in policy_plan.enforced_changes:
        print(f"  ! affects enforced users now: {line}")
    if policy_plan.lint.reduces_only:
        print("  (this apply only takes enforcement away: WG-CA-07, 08 and 10 warn instead of blocking)")
    after = [f for f in policy_plan.lint.findings if f.scope == "after-apply"]
    live = [f for f in policy_plan.lint.findings if f.scope == "live"]
    print("Lint (the policies after this apply; errors block it):")
    print("\n".join(f"  {finding}" for finding in after) or "  all checks passed")
    if live:
        print("Lint (the live policies now; for information):")
        print("\n".join(f"  {finding}" for finding in live))
    d = policy_plan.diff
    verdict = "passed" if policy_plan.lint.ok else f"FAILED ({len(policy_plan.lint.blocking)} blocking)"
    named = ""
    if locations.changes:
        named = (
            f" Named locations: {locations.count('create')} to create, {locations.count('update')} to "
            f"update, {locations.count('unchanged')} unchanged."
        )
    print(
        f"Plan: {d.count('create')} to create, {d.count('update')} to update, "
        f"{d.count('unchanged')} unchanged.{named} Lint {verdict}."
    )


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def print_preflight(preflight: Preflight) -> None:
    if not preflight.findings:
        return
    print("Tenant preflight (blocking problems stop apply):")
    for finding in preflight.findings:
        mark = "ok     " if finding.ok else ("BLOCKS " if finding.blocking else "WARN   ")
        print(f"  {mark}{finding}")


def print_drift(drifts: list[GroupDrift]) -> None:
    for drift in drifts:
        names = f"{drift.current!r} -> {drift.planned!r}"
        print(f"  ~ rename group {drift.group_id}: {names} (wave {drift.wave})")


async def plan_command(deps: PolicyDeps, *, as_json: bool) -> int:
    """`policies plan`: print the diff, the wave groups to rename and the lint; exit 0, 1 (lint/error)
    or 3 (changes)."""
    preflight = await deps.preflight()
    policy_plan = await prepare(deps, preflight)
    drifts = await deps.group_drift()
    code = plan_exit_code(policy_plan, preflight)
    if code == EXIT_OK and drifts:
        code = EXIT_CHANGES
    if as_json:
        body = {
            **plan_to_json(policy_plan),
            "groupRenames": [d.to_dict() for d in drifts],
            "preflight": preflight.to_dict(),
            "exitCode": code,
        }
        print(json.dumps(body, indent=2))
    else:
        print_preflight(preflight)
        print_plan(policy_plan)
        print_drift(drifts)
    return code


async def apply_command(
    deps: PolicyDeps,
    *,
    yes: bool,
    as_json: bool,
    actor: str,
    confirm: Callable[[str], bool],
    accept_enforced_change: bool = False,
) -> int:
    """`policies apply`: refuse on a failed lint or an unaccepted edit that affects enforced users
    now, else (after confirmation) write and audit the diff."""
    # The lock spans the diff and the writes: a concurrent apply would diff against stale policies.
    async with apply_lock(deps.idempotency):
        preflight = await deps.preflight()
        policy_plan = await prepare(deps, preflight)
        drifts = await deps.group_drift()
        if not as_json:
            print_preflight(preflight)
            print_plan(policy_plan)
            print_drift(drifts)
        if preflight.blocking:
            what = "; ".join(f"{f.detail} (fix: {f.fix})" for f in preflight.blocking)
            _report(
                as_json,
                policy_plan,
                None,
                f"refused: the tenant cannot take these policies: {what}",
                preflight,
            )
            return EXIT_FAILED
        if not policy_plan.lint.ok:
            _report(as_json, policy_plan, None, "refused: the lint failed; nothing was written", preflight)
            return EXIT_FAILED
        if policy_plan.enforced_changes and not accept_enforced_change:
            message = (
                f"refused: {len(policy_plan.enforced_changes)} edit(s) affect enforced users now; nothing "
                "was written. Review them, then run `waveguard policies apply --accept-enforced-change`"
            )
            _report(as_json, policy_plan, None, message, preflight)
            return EXIT_FAILED
        if drifts and (yes or confirm(f"Rename {len(drifts)} wave group(s)? [y/N] ")):
            renamed = await deps.rename_groups(drifts, actor, uuid.uuid4().hex)
            if not as_json:
                for drift in renamed:
                    print(f"  renamed group {drift.group_id} to {drift.planned!r} (wave {drift.wave})")
        if not policy_plan.has_changes:
            await schedule_soak_resync(deps.kv, policy_plan)
            _report(as_json, policy_plan, ApplyResult(), "nothing to apply", preflight)
            return EXIT_OK
        if not yes and not confirm(f"Apply {len(policy_plan.diff.writes)} change(s)? [y/N] "):
            _report(as_json, policy_plan, None, "not applied: not confirmed", preflight)
            return EXIT_FAILED
        correlation_id = uuid.uuid4().hex
        result = await apply_policy_plan(
            policy_plan,
            api=deps.api,
            kv=deps.kv,
            audit=deps.audit,
            actor=actor,
            correlation_id=correlation_id,
            accept_enforced_change=accept_enforced_change,
        )
        # A pair holding an enforced wave in its twin: the rollout timer syncs again when it is due.
        await schedule_soak_resync(deps.kv, policy_plan)
    _report(
        as_json,
        policy_plan,
        result,
        f"applied {result.writes} write(s), correlation id {correlation_id}",
        preflight,
    )
    return EXIT_OK


def _report(
    as_json: bool,
    policy_plan: PolicyPlan,
    result: ApplyResult | None,
    message: str,
    preflight: Preflight | None = None,
) -> None:
    if not as_json:
        if result is not None:
            for name, location_id in result.locations_created:
                print(f"  created named location {name} [{location_id}]")
            for name, location_id in result.locations_updated:
                print(f"  updated named location {name} [{location_id}]")
            for name, policy_id in result.created:
                print(f"  created {name} [{policy_id}] (report-only)")
            for name, policy_id in result.updated:
                print(f"  updated {name} [{policy_id}]")
        print(message)
        return
    applied = None
    if result is not None:
        applied = {
            "created": [{"displayName": n, "id": i} for n, i in result.created],
            "updated": [{"displayName": n, "id": i} for n, i in result.updated],
            "namedLocationsCreated": [{"displayName": n, "id": i} for n, i in result.locations_created],
            "namedLocationsUpdated": [{"displayName": n, "id": i} for n, i in result.locations_updated],
            "writes": result.writes,
            "correlationId": result.correlation_id,
        }
    body = {**plan_to_json(policy_plan), "applied": applied, "message": message}
    if preflight is not None:
        body["preflight"] = preflight.to_dict()
    print(json.dumps(body, indent=2))


def _ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(prompt).strip().lower() in ("y", "yes")


def _actor(env: Mapping[str, str]) -> str:
    return f"cli:{env.get('USER') or env.get('USERNAME') or 'unknown'}"


def _run(
    command: Callable[[PolicyDeps], Awaitable[int]], env: Mapping[str, str], factory: DepsFactory
) -> int:
    async def go() -> int:
        # Built inside the loop: the Graph client's connection pool belongs to it.
        return await command(factory(env))

    try:
        return asyncio.run(go())
    except WaveGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def run_plan(args: argparse.Namespace, env: Mapping[str, str], factory: DepsFactory = build_deps) -> int:
    return _run(lambda deps: plan_command(deps, as_json=args.json), env, factory)


def run_apply(args: argparse.Namespace, env: Mapping[str, str], factory: DepsFactory = build_deps) -> int:
    if not args.yes and not sys.stdin.isatty():
        print("error: --yes: required when not running interactively (CI)", file=sys.stderr)
        return EXIT_USAGE
    return _run(
        lambda deps: apply_command(
            deps,
            yes=args.yes,
            as_json=args.json,
            actor=_actor(env),
            confirm=_ask,
            accept_enforced_change=getattr(args, "accept_enforced_change", False),
        ),
        env,
        factory,
    )

"""Demo step: once the pilot is enforced, its users on per-user MFA move off it (counts before and after).

Runs right after the wave promotion on the live stack: the same `permfa report` and `permfa migrate`
code the CLI runs, against the Graph emulator (whose demo tenant seeds some IT and Finance people on
per-user MFA) and Azurite; the tenant-wide count comes from the emulator's admin API.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx

from shared.rollout.permfa import PERMFA_NAMESPACE, REPORT_KEY, build_report, summary_line
from shared.rollout.permfa.migrate import migrate

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

    from shared.config import RolloutPlan
    from shared.state import AsyncStores

__all__ = ["show_per_user_mfa_migration"]


def _tenant_count(admin: httpx.Client) -> int:
    return int(admin.get("/per-user-mfa").json()["count"])


def _wave_counts(report: Any, wave: str) -> str:
    [row] = [w for w in report.waves if w.wave == wave]
    c = row.counts
    on = c["enabled"] + c["enforced"]
    return f"{on} on it ({c['enforced']} enforced, {c['enabled']} enabled) of {len(row.members)} members"


async def show_per_user_mfa_migration(
    client: GraphServiceClient,
    plan: RolloutPlan,
    stores: AsyncStores,
    admin: httpx.Client,
    wave: str,
    *,
    cli: str = "waveguard",
) -> None:
    """Print per-user MFA in ``wave`` before, migrate it (audited, ledger written), print after;
    ``cli`` starts the rollback command it suggests."""
    print("  per-user MFA (the legacy per-user switch, prompting on every sign-in):", flush=True)
    tenant_before = _tenant_count(admin)
    before = await build_report(client, plan, stores.kv)
    print(
        f"      before: {wave}: {_wave_counts(before, wave)}; tenant-wide {tenant_before} users", flush=True
    )
    result = await migrate(
        client,
        plan,
        stores,
        wave,
        actor="demo",
        correlation_id=f"demo-{uuid.uuid4().hex[:8]}",
    )
    kept = len(result.plan.not_registered) + len(result.plan.excluded_from_ca) + len(result.plan.unknown)
    print(
        f"      waveguard permfa migrate {wave}: {len(result.disabled)} moved off per-user MFA "
        f"({result.write.round_trips} $batch, {result.write.write_requests} writes), {kept} kept, "
        f"{len(result.failed)} failed; previous states in the ledger (`{cli} permfa rollback {wave}`)",
        flush=True,
    )
    after = await build_report(client, plan, stores.kv)
    tenant_after = _tenant_count(admin)
    print(
        f"      after:  {wave}: {_wave_counts(after, wave)}; tenant-wide {tenant_after} users "
        "(the rest are in waves CA does not enforce yet: they keep per-user MFA)",
        flush=True,
    )
    saved = await stores.kv.get(PERMFA_NAMESPACE, REPORT_KEY)
    if saved is not None:
        print(f"      {summary_line(saved.value)}", flush=True)

"""Announcements on the live stack, for the demo (`show_announcements`, called from local/demo.py).

With a copy of the plan that turns announcements on for the pilot (3 days' notice), it previews
the pilot's report-only announcement, sends it to the pilot group's members through the same
exactly-once path as the rollout timer, sends again to show nothing goes twice, and reads what the
emulator delivered. It does not change any wave's state; its announcement records are cleared
first, so it can be re-run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml

from local.demo_plan import write_demo_plan
from shared.config import Settings, load_settings
from shared.graph import build_graph_client
from shared.rollout.lifecycle.announcements import (
    ANNOUNCEMENTS_NAMESPACE,
    Announcer,
    AnnounceReport,
    ledger_namespace,
)
from shared.services import build_services
from shared.state import AsyncKeyValuePort

__all__ = ["clear_announcements", "show_announcements"]

NOTICE_DAYS = 3


def _demo_plan(settings: Settings) -> Path:
    data = yaml.safe_load(settings.config_path.read_text(encoding="utf-8"))
    data["communications"] = {"enabled": True, "contact": "the IT service desk (ext. 4357)"}
    data["waves"][0].setdefault("gates", {})["announcedDaysBefore"] = NOTICE_DAYS
    for wave in data["waves"][1:]:
        wave["communications"] = {"enabled": False}
    return write_demo_plan(data, "waveguard-announcements.yaml")


async def clear_announcements(kv: AsyncKeyValuePort, wave: str) -> None:
    """Forget a wave's announcements (its ledger and every cycle's summary): a re-run starts clean. The
    idempotency claims stay: they expire by themselves, and a claim without its ledger row is
    recorded again, never re-sent."""
    for key, _ in await kv.items(ledger_namespace(wave), limit=100_000):
        await kv.delete(ledger_namespace(wave), key)
    for key, _ in await kv.items(ANNOUNCEMENTS_NAMESPACE, start=f"{wave}:", stop=f"{wave};", limit=100_000):
        await kv.delete(ANNOUNCEMENTS_NAMESPACE, key)


def _print(label: str, report: AnnounceReport) -> None:
    print(
        f"  {label}: members {report.members}, to send {report.to_send}, already sent "
        f"{report.already_sent}, no mailbox {report.no_mailbox}; sent {report.sent} in "
        f"{report.batches} batches, {report.remaining} still to send; date {report.date}"
    )


def show_announcements(settings: Settings, environ: Mapping[str, str]) -> None:
    """Print the pilot's report-only announcement: a preview, a send, a second send that sends nothing."""
    plan_path = _demo_plan(settings)
    try:
        demo_settings = load_settings({**environ, "WAVEGUARD_CONFIG": str(plan_path)})
        print("\n== Announcements: the pilot is told before report-only (demo plan: 3 days' notice) ==")
        asyncio.run(_announce(demo_settings))
    finally:
        plan_path.unlink(missing_ok=True)


async def _announce(settings: Settings) -> None:
    deps = build_services(settings).lifecycle_for(client=build_graph_client(settings), actor="demo")
    announcer = deps.announcer
    assert isinstance(announcer, Announcer)
    wave = deps.plan.waves[0]
    await clear_announcements(deps.stores.kv, wave.name)
    preview = await announcer.run(wave, "reportOnly", actor="demo", correlation_id="demo", dry_run=True)
    _print("dry run", preview)
    if preview.preview is not None:
        print(f"  to {preview.preview.to}: {preview.preview.subject}")
        for line in preview.preview.body.splitlines():
            print(f"    {line}")
    first = await announcer.run(wave, "reportOnly", actor="demo", correlation_id=f"demo-{uuid.uuid4().hex}")
    _print("sent", first)
    again = await announcer.run(wave, "reportOnly", actor="demo", correlation_id=f"demo-{uuid.uuid4().hex}")
    _print("again", again)
    admin = settings.graph_base_url.rstrip("/").removesuffix("/v1.0") + "/_emulator"
    async with httpx.AsyncClient(timeout=30) as client:
        outbox = (await client.get(f"{admin}/outbox", params={"from": announcer.sender})).json()["value"]
    subject = preview.preview.subject if preview.preview else None
    print(f"  the emulator delivered {sum(1 for m in outbox if m['subject'] == subject)} such e-mails")

"""Fakes for the announcement tests: the directory and a sender mailbox with drafts, and a plan."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from shared.config import APP_ROOT, RolloutPlan, load_plan
from shared.errors import PermanentError
from shared.graph.mail import MailMessage, MessageState
from shared.rollout.lifecycle.announcements import Recipient
from tests.conftest import PLAN_SECRETS
from tests.unit.lifecycle.fakes import Clock


class Crash(BaseException):
    """The process going down: nothing is released (``once`` only releases on Exception)."""


@dataclass
class FakeAnnouncementMail:
    """Wave members by wave; drafts by id; ``sent`` in sending order."""

    members: dict[str, list[Recipient]] = field(default_factory=dict)
    drafts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[MailMessage] = field(default_factory=list)
    # The next sends go out and then raise this (a lost answer, or a crash after the send).
    fail_after_send: list[BaseException] = field(default_factory=list)
    fail_before_send: list[BaseException] = field(default_factory=list)
    state_reads: int = 0
    undeliverable: set[str] = field(default_factory=set)  # addresses Exchange refuses
    refuse: dict[str, PermanentError] = field(default_factory=dict)  # address -> what its send raises
    refusals: int = 0
    # Each send moves this clock on by send_seconds (a slow mailbox).
    clock: Clock | None = None
    send_seconds: float = 0.0
    # The member read raises this (Graph down) and moves the clock on by read_seconds.
    read_error: BaseException | None = None
    read_seconds: float = 0.0
    send_times: list[datetime] = field(default_factory=list)
    # The first create_draft ("draft") or message_state ("state") call stalls until ``resume`` is
    # set, telling ``stalled`` (a holder asleep, or stuck in 429 retries).
    stall_at: str | None = None
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    resume: asyncio.Event = field(default_factory=asyncio.Event)

    async def _maybe_stall(self, where: str) -> None:
        if self.stall_at == where:
            self.stall_at = None
            self.stalled.set()
            await self.resume.wait()

    async def recipients(self, wave: str) -> list[Recipient]:
        if self.clock is not None and self.read_seconds:
            self.clock.advance(seconds=self.read_seconds)
        if self.read_error is not None:
            raise self.read_error
        return list(self.members.get(wave, []))

    async def find_tagged(self, tag: str) -> tuple[str, MessageState] | None:
        for draft_id, draft in self.drafts.items():
            if draft["tag"] == tag:
                return draft_id, "sent" if draft["sent"] else "draft"
        return None

    async def create_draft(self, message: MailMessage, *, tag: str) -> str:
        await self._maybe_stall("draft")
        if message.to[0] in self.undeliverable:
            raise PermanentError(
                "Graph answered 400: ErrorInvalidRecipients", status=400, code="ErrorInvalidRecipients"
            )
        draft_id = uuid.uuid4().hex
        self.drafts[draft_id] = {"message": message, "sent": False, "tag": tag}
        return draft_id

    async def message_state(self, message_id: str) -> MessageState | None:
        await self._maybe_stall("state")
        self.state_reads += 1
        found = self.drafts.get(message_id)
        if found is None:
            return None
        return "sent" if found["sent"] else "draft"

    async def send_draft(self, message_id: str) -> None:
        if self.fail_before_send:
            raise self.fail_before_send.pop(0)
        draft = self.drafts[message_id]
        assert not draft["sent"], "a draft sent twice"
        if draft["message"].to[0] in self.refuse:
            self.refusals += 1
            raise self.refuse[draft["message"].to[0]]
        if self.clock is not None:
            self.send_times.append(self.clock())
            self.clock.advance(seconds=self.send_seconds)
        draft["sent"] = True
        self.sent.append(draft["message"])
        if self.fail_after_send:
            raise self.fail_after_send.pop(0)

    def sent_to(self) -> list[str]:
        return [m.to[0] for m in self.sent]


def people(*names: str, mail: bool = True) -> list[Recipient]:
    """Members ``u-<name>`` called ``<Name>`` with ``<name>@contoso.com`` mailboxes."""
    return [
        Recipient(f"u-{n}", n.title(), f"{n}@contoso.com" if mail else None, f"{n}@contoso.com")
        for n in names
    ]


class SleepingClock:
    """``sleep`` for the announcer that moves the fake clock instead of waiting."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)


def comms_plan(tmp_path: Path, section: dict[str, Any] | None = None, **pilot: Any) -> RolloutPlan:
    """The example plan with ``communications`` set to ``section`` (enabled unless said; for the
    pilot only) and the pilot's fields replaced (camelCase keys, nested dicts merged)."""
    data = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    data["communications"] = {
        "enabled": True,
        "contact": "the service desk (ext. 4357)",
        **(section or {}),
    }
    for wave in data["waves"][1:]:  # only the pilot announces (the others would need the gate too)
        wave["communications"] = {"enabled": False}
    for key, value in pilot.items():
        current = data["waves"][0].get(key)
        data["waves"][0][key] = {**current, **value} if isinstance(current, dict) else value
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_plan(path, PLAN_SECRETS)

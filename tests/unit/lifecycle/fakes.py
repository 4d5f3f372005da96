"""Fakes for the wave lifecycle unit tests: evidence, the CA sync, membership, mail, and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from shared.config import APP_ROOT, RolloutPlan, load_plan
from shared.graph.mail import MailMessage
from shared.rollout.lifecycle import Contact, SignInResult
from tests.conftest import PLAN_SECRETS

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class FakeEvidence:
    members: dict[str, set[str]] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    sign_ins: list[SignInResult] = field(default_factory=list)
    upns: dict[str, str] = field(default_factory=dict)  # user id -> UPN
    mails: dict[str, str] = field(default_factory=dict)  # user id -> mail, when not the UPN
    report_reads: int = 0
    sign_in_reads: list[bool] = field(default_factory=list)  # mfa_details of each read

    async def wave_members(self, wave: str) -> frozenset[str]:
        return frozenset(self.members.get(wave, set()))

    async def wave_member_addresses(self, wave: str) -> dict[str, str]:
        ids = self.members.get(wave, set())
        return {
            address.casefold(): i for i in ids for address in (self.upns.get(i), self.mails.get(i)) if address
        }

    async def registered_users(self) -> frozenset[str]:
        self.report_reads += 1
        return frozenset(self.registered)

    async def report_only_sign_ins(
        self, policy_name: str, *, since: datetime, mfa_details: bool = False
    ) -> list[SignInResult]:
        self.sign_in_reads.append(mfa_details)
        return [s for s in self.sign_ins if s.created >= since and (s.result or mfa_details)]


@dataclass
class Recorder:
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: Exception | None = None

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.calls.append({"args": args, **kwargs})


@dataclass
class FakeMail:
    contacts: dict[str, Contact] = field(default_factory=dict)
    sent: list[MailMessage] = field(default_factory=list)
    fail_next: Exception | None = None

    async def contact(self, user_id: str) -> Contact | None:
        return self.contacts.get(user_id)

    async def send(self, message: MailMessage) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.sent.append(message)


def plan_with(tmp_path: Path, **pilot: Any) -> RolloutPlan:
    """The example plan with the pilot wave's fields replaced (camelCase keys, as in YAML)."""
    data = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text(encoding="utf-8"))
    for key, value in pilot.items():
        if isinstance(value, dict) and isinstance(data["waves"][0].get(key), dict):
            data["waves"][0][key] = {**data["waves"][0][key], **value}
        else:
            data["waves"][0][key] = value
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_plan(path, PLAN_SECRETS)

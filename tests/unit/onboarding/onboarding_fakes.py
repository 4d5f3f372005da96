"""In-memory fakes of the onboarding ports: a tiny directory with TAPs and an outbox, a queue sender."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from shared.config import APP_ROOT, RolloutPlan, Settings, parse_plan
from shared.envelope import Envelope
from shared.errors import NotFoundError, PermanentError, RetryableError
from shared.graph.account import AccountFacts
from shared.graph.hire_writes import SendAndJoin
from shared.graph.mail import MailMessage
from shared.graph.tap import IssuedTap, TapMethod
from shared.hr.events import parse_hr_event
from shared.onboarding import Deps, DirectoryUser
from shared.onboarding.ports import HireFacts
from shared.state import StateStores, build_memory_state
from tests.conftest import PLAN_SECRETS

EXAMPLE: dict[str, Any] = yaml.safe_load((APP_ROOT / "config" / "waveguard.yaml").read_text("utf-8"))
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def plan(**new_hires: Any) -> RolloutPlan:
    doc = copy.deepcopy(EXAMPLE)
    doc["newHires"].update(new_hires)
    return parse_plan(yaml.safe_dump(doc, sort_keys=False), PLAN_SECRETS, source="test-plan")


@dataclass
class FakeGraph:
    """Users, groups, managers, TAPs (one usable per user) and sent mail; `fail` injects errors."""

    users: dict[str, DirectoryUser] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    taps: dict[str, list[tuple[TapMethod, str]]] = field(default_factory=dict)
    outbox: list[tuple[str, MailMessage]] = field(default_factory=list)
    fail: dict[str, list[Exception]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # Per user id; a user without an entry is a genuinely new account (created a day ago, nothing registered).
    facts: dict[str, AccountFacts] = field(default_factory=dict)
    # The manager Entra records for users without an entry in `managers` (None: no manager).
    default_manager: str | None = None
    drafts: dict[str, tuple[str, MailMessage, bool]] = field(default_factory=dict)
    lose_send_answer: int = 0  # sends that happen but answer an error (the worker never learns)
    lose_batch_answer: int = 0  # send-and-join batches Graph runs whose answer is lost
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        pending = self.fail.get(operation)
        if pending:
            raise pending.pop(0)

    def add_user(self, upn: str, *, manager: str | None = None, **fields: Any) -> DirectoryUser:
        user = DirectoryUser(id=f"user-{next(self._ids)}", user_principal_name=upn, mail=upn, **fields)
        self.users[user.id] = user
        if manager:
            self.managers[user.id] = self.by_upn(manager).id
        return user

    def add_group(self, name: str) -> str:
        group_id = f"group-{next(self._ids)}"
        self.groups[group_id] = {"displayName": name, "members": set()}
        return group_id

    def by_upn(self, upn: str) -> DirectoryUser:
        return next(u for u in self.users.values() if (u.user_principal_name or "").lower() == upn.lower())

    def members_of(self, name: str) -> set[str]:
        return set().union(*(g["members"] for g in self.groups.values() if g["displayName"] == name))

    def usable_taps(self, user_id: str) -> list[str]:
        return [value for _, value in self.taps.get(user_id, [])]

    async def find_user(self, id_or_upn: str) -> DirectoryUser | None:
        self._enter("find_user")
        return self.users.get(id_or_upn) or next(
            (u for u in self.users.values() if (u.user_principal_name or "").lower() == id_or_upn.lower()),
            None,
        )

    async def find_user_by_employee_id(self, employee_id: str) -> DirectoryUser | None:
        self._enter("find_user_by_employee_id")
        return next((u for u in self.users.values() if u.employee_id == employee_id), None)

    async def get_manager(self, user_id: str) -> DirectoryUser | None:
        self._enter("get_manager")
        manager = self.managers.get(user_id, self.default_manager)
        return self.users[manager] if manager and manager != user_id else None

    async def account_facts(self, user_id: str) -> AccountFacts:
        self._enter("account_facts")
        return self.facts.get(user_id, AccountFacts(created_at=NOW - timedelta(days=1)))

    async def member_of(self, user_id: str) -> list[tuple[str, str | None]]:
        self._enter("member_of")
        return [(gid, g["displayName"]) for gid, g in self.groups.items() if user_id in g["members"]]

    async def hire_facts(self, user_id: str) -> HireFacts:
        # one $batch in production; here the three reads it holds (each counted, each can fail)
        return HireFacts(
            groups=await self.member_of(user_id),
            account=await self.account_facts(user_id),
            manager=await self.get_manager(user_id),
        )

    async def find_hire(
        self, employee_id: str | None, user_principal_name: str
    ) -> tuple[DirectoryUser, HireFacts] | None:
        # one $batch in production; here the look-ups and reads it holds (each counted, each can fail)
        user = await self.find_user_by_employee_id(employee_id) if employee_id else None
        user = user or await self.find_user(user_principal_name)
        return None if user is None else (user, await self.hire_facts(user.id))

    async def find_group_id(self, *, group_id: str | None, display_name: str | None) -> str | None:
        self._enter("find_group_id")
        if group_id:
            return group_id if group_id in self.groups else None
        named = [gid for gid, g in self.groups.items() if g["displayName"] == display_name]
        if len(named) > 1:  # as shared.graph.directory.find_group
            raise PermanentError(
                f"several groups are named {display_name!r}; give the group's id in the config"
            )
        return named[0] if named else None

    async def create_security_group(self, display_name: str, *, description: str) -> str:
        self._enter("create_security_group")
        return self.add_group(display_name)

    async def delete_group(self, group_id: str) -> bool:
        self._enter("delete_group")
        return self.groups.pop(group_id, None) is not None

    async def add_member(self, group_id: str, user_id: str) -> bool:
        self._enter("add_member")
        if group_id not in self.groups or user_id not in self.users:
            raise NotFoundError("the group or the member does not exist", group_id=group_id)
        members: set[str] = self.groups[group_id]["members"]
        added = user_id not in members
        members.add(user_id)
        return added

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        self._enter("remove_member")
        members: set[str] = self.groups[group_id]["members"]
        present = user_id in members
        members.discard(user_id)
        return present

    async def create_tap(
        self, user_id: str, *, lifetime_minutes: int, is_usable_once: bool, start_at: datetime | None
    ) -> IssuedTap:
        self._enter("create_tap")
        number = next(self._ids)
        method = TapMethod(f"tap-{number}", NOW, start_at, lifetime_minutes, is_usable_once, True)
        value = f"TAP-SECRET-{number:04d}"
        self.taps[user_id] = [(method, value)]  # one per user: a new one replaces the old
        return IssuedTap(method, value)

    async def list_taps(self, user_id: str) -> list[TapMethod]:
        self._enter("list_taps")
        return [method for method, _ in self.taps.get(user_id, [])]

    async def delete_tap(self, user_id: str, method_id: str) -> bool:
        self._enter("delete_tap")
        before = self.taps.get(user_id, [])
        self.taps[user_id] = [(m, v) for m, v in before if m.id != method_id]
        return len(before) != len(self.taps[user_id])

    async def create_draft(self, sender: str, message: MailMessage, *, tag: str) -> str:
        self._enter("create_draft")
        draft_id = f"draft-{next(self._ids)}"
        self.drafts[draft_id] = (sender, message, False)
        return draft_id

    async def message_state(self, sender: str, message_id: str) -> str | None:
        self._enter("message_state")
        found = self.drafts.get(message_id)
        return None if found is None else ("sent" if found[2] else "draft")

    async def send_draft(self, sender: str, message_id: str) -> None:
        self._enter("send_draft")
        owner, message, sent = self.drafts[message_id]
        assert not sent, "a draft is sent once"
        self.drafts[message_id] = (owner, message, True)
        self.outbox.append((owner, message))
        if self.lose_send_answer:
            self.lose_send_answer -= 1
            raise RetryableError("the connection dropped after Graph accepted the send")

    async def send_draft_and_add_member(
        self, sender: str, message_id: str, group_id: str, user_id: str
    ) -> SendAndJoin:
        # one $batch in production; here its two writes, each can fail on its own
        sent: Exception | None = None
        joined: bool | Exception
        try:
            await self.send_draft(sender, message_id)
        except Exception as exc:
            sent = exc
        try:
            joined = await self.add_member(group_id, user_id)
        except Exception as exc:
            joined = exc
        if self.lose_batch_answer:
            self.lose_batch_answer -= 1
            raise RetryableError("the connection dropped after Graph ran the batch")
        return SendAndJoin(sent=sent, joined=joined)

    async def send_mail(self, sender: str, message: MailMessage) -> None:
        self._enter("send_mail")
        self.outbox.append((sender, message))


@dataclass
class FakeQueues:
    sent: list[tuple[str, Envelope, float | None]] = field(default_factory=list)

    async def send(
        self, queue_name: str, envelope: Envelope, *, delay: timedelta | float | None = None, ttl: Any = None
    ) -> str:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        self.sent.append((queue_name, envelope, seconds))
        return str(len(self.sent))

    def on(self, queue_name: str) -> list[Envelope]:
        return [env for name, env, _ in self.sent if name == queue_name]


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    graph: FakeGraph
    queues: FakeQueues
    clock: Clock
    deps: Deps
    stores: StateStores  # the same stores as deps.state, for synchronous set-up and assertions


def make_world(
    rollout: RolloutPlan | None = None, *, stores: Callable[[Clock], StateStores] | None = None
) -> World:
    """A tenant with Grace Hopper (every hire's manager) and the exclusion group; ``stores`` builds
    the state stores over the world's clock (in-memory ones by default)."""
    graph, queues, clock = FakeGraph(), FakeQueues(), Clock()
    stores = stores(clock) if stores is not None else build_memory_state(clock=clock)
    deps = Deps(
        settings=Settings(config_path=Path("test-plan")),
        plan=rollout or plan(),
        graph=graph,
        state=stores.aio,
        queues=queues,
        clock=clock,
    )
    grace = graph.add_user("grace.hopper@contoso.com", display_name="Grace Hopper", department="Finance")
    graph.default_manager = grace.id  # Entra records Grace as the hires' manager (as HR says)
    exclusion = deps.plan.break_glass.exclusion_group
    graph.add_group(str(exclusion.display_name or exclusion.id))  # every tenant WaveGuard runs in has it
    return World(graph, queues, clock, deps, stores)


def hire_event(event_type: str = "employee.hired", envelope_id: str = "whk-1", **data: Any) -> Envelope:
    payload = {
        "type": event_type,
        "timestamp": "2026-11-30T08:00:00Z",
        "data": {
            "employeeId": "E9001",
            "userPrincipalName": "ada.lovelace@contoso.com",
            "displayName": "Ada Lovelace",
            "department": "Finance",
            "country": "GB",
            "managerUserPrincipalName": "grace.hopper@contoso.com",
            "hireDate": "2026-12-01",
            **data,
        },
    }
    payload["data"] = {k: v for k, v in payload["data"].items() if v is not None}
    parse_hr_event(payload)  # the fixtures themselves are valid events
    return Envelope(type=event_type, payload=payload, id=envelope_id)


def transient(operation: str) -> RetryableError:
    return RetryableError(f"Graph answered 503 during {operation}", retry_after=1)


__all__ = ["NOW", "Clock", "FakeGraph", "FakeQueues", "World", "hire_event", "make_world", "plan", "replace"]

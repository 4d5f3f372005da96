"""The fault campaign's workload: a seeded mix of HR events, and a sender that retries like an HR system.

Every run of the same seed sends the same events (same webhook ids, same bodies): the clean run and
the faulty run differ only in the faults.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from standardwebhooks.webhooks import Webhook

__all__ = ["HIRE_DEPARTMENTS", "Hire", "HrEventSpec", "Workload", "build_workload", "send_event"]

HIRE_DEPARTMENTS: Final = ("Finance", "HR", "Sales", "Marketing", "Engineering", "Operations", "Legal", "IT")
_COUNTRIES: Final = ("GB", "US", "DE", "FR", "NL", "IN")
_FIRST_HIRE_NUMBER: Final = 7000


@dataclass(frozen=True, slots=True)
class Hire:
    """A new account the campaign creates in Entra before HR announces it."""

    employee_id: str
    upn: str
    department: str
    country: str
    manager_upn: str


@dataclass(frozen=True, slots=True)
class HrEventSpec:
    """One webhook delivery: its id (repeats dedupe) and its body."""

    webhook_id: str
    kind: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Workload:
    """The accounts to create and the deliveries to send, in order."""

    hires: tuple[Hire, ...]
    events: tuple[HrEventSpec, ...]


def _event(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "timestamp": "2026-12-01T08:00:00Z", "data": data})


def build_workload(people: list[dict[str, Any]], heads: dict[str, str], *, total: int, seed: int) -> Workload:
    """``total`` deliveries: 60 % hires of new accounts, 12 % HR re-deliveries of a hire, 16 %
    department changes and 12 % terminations of existing employees (none of them a hire).

    ``people`` are existing employees (``employeeId``, ``userPrincipalName``, ``department``);
    ``heads`` maps a department to its head's UPN (the hires' manager in Entra and in HR).
    """
    rng = random.Random(seed)
    n_hires = total * 60 // 100
    n_repeats = total * 12 // 100
    n_updates = total * 16 // 100
    n_leavers = total - n_hires - n_repeats - n_updates
    hires = tuple(
        Hire(
            employee_id=f"E{_FIRST_HIRE_NUMBER + i}",
            upn=f"hire{_FIRST_HIRE_NUMBER + i}@contoso.com",
            department=(department := HIRE_DEPARTMENTS[i % len(HIRE_DEPARTMENTS)]),
            country=_COUNTRIES[i % len(_COUNTRIES)],
            manager_upn=heads[department],
        )
        for i in range(n_hires)
    )
    events: list[HrEventSpec] = []
    for hire in hires:
        data = {
            "employeeId": hire.employee_id,
            "userPrincipalName": hire.upn,
            "displayName": f"Hire {hire.employee_id}",
            "department": hire.department,
            "country": hire.country,
            "managerUserPrincipalName": hire.manager_upn,
            "hireDate": "2026-12-01",
        }
        events.append(
            HrEventSpec(f"msg_hire_{hire.employee_id}", "hire", hire.upn, _event("employee.hired", data))
        )
    for original in rng.sample(events[:n_hires], n_repeats):
        events.append(HrEventSpec(original.webhook_id, "repeat", original.subject, original.body))
    employees = [p for p in people if p.get("employeeId")]
    movers = rng.sample(employees, n_updates + n_leavers)
    for person in movers[:n_updates]:
        department = rng.choice([d for d in HIRE_DEPARTMENTS if d != person.get("department")])
        data = {
            "employeeId": person["employeeId"],
            "userPrincipalName": person["userPrincipalName"],
            "department": department,
        }
        events.append(
            HrEventSpec(
                f"msg_upd_{person['employeeId']}",
                "update",
                person["userPrincipalName"],
                _event("employee.updated", data),
            )
        )
    for person in movers[n_updates:]:
        data = {
            "employeeId": person["employeeId"],
            "userPrincipalName": person["userPrincipalName"],
            "terminationDate": "2026-12-01",
        }
        events.append(
            HrEventSpec(
                f"msg_term_{person['employeeId']}",
                "termination",
                person["userPrincipalName"],
                _event("employee.terminated", data),
            )
        )
    rng.shuffle(events)  # a day of HR traffic: hires, repeats, changes and leavers interleaved
    return Workload(hires, tuple(events))


def send_event(
    http: httpx.Client, api: str, secret: str, event: HrEventSpec, *, deadline: float
) -> tuple[int, int]:
    """POST one signed delivery, retrying like an HR system (connection errors, 5xx, 429) until a
    final answer or ``deadline`` (monotonic); returns (final status, attempts). Each attempt is signed
    anew with the same webhook id: a repeat is the same envelope, which the worker applies once."""
    attempts = 0
    while True:
        attempts += 1
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": event.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(event.webhook_id, now, event.body),
        }
        try:
            status = http.post(f"{api}/hr/events", content=event.body, headers=headers).status_code
        except httpx.HTTPError:
            status = 0
        if status and status < 500 and status != 429:
            return status, attempts
        if time.monotonic() > deadline:
            return status, attempts
        time.sleep(min(2.0, 0.2 * attempts))

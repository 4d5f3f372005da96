"""An in-memory Graph for the risk poller's unit tests: users, groups, risk records, sign-ins.

It answers the paths the poller reads (``$filter=... ge <time>`` honoured on the three risk
sources, everything else by prefix) and records every call and POST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from shared.errors import RetryableError

BG1 = "0b9e0b1e-0000-4000-8000-0000000000b1"
BG2 = "0b9e0b1e-0000-4000-8000-0000000000b2"
EXCLUSION = "e0c1e0c1-0000-4000-8000-00000000e0c1"
PILOT = "91107000-0000-4000-8000-000000000001"
FINANCE = "f1a0ce00-0000-4000-8000-000000000002"
ADA = "ada00000-0000-4000-8000-00000000ada0"
BOB = "b0b00000-0000-4000-8000-00000000b0b0"

GROUPS = {
    "WaveGuard - Break glass exclusion": EXCLUSION,
    "WaveGuard - Wave 1 Pilot": PILOT,
    "WaveGuard - Wave 2 Finance and HR": FINANCE,
}
_SOURCES = {
    "/identityProtection/riskDetections": ("detections", "detectedDateTime"),
    "/identityProtection/riskyUsers": ("risky_users", "riskLastUpdatedDateTime"),
    "/auditLogs/signIns": ("sign_ins", "createdDateTime"),
}


@dataclass
class FakeGraph:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    methods: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    detections: list[dict[str, Any]] = field(default_factory=list)
    risky_users: list[dict[str, Any]] = field(default_factory=list)
    sign_ins: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    posts: list[tuple[str, Any]] = field(default_factory=list)
    fail_on: str | None = None
    page_size: int = 2

    @classmethod
    def tenant(cls) -> FakeGraph:
        graph = cls()
        graph.users = {
            BG1: {
                "id": BG1,
                "userPrincipalName": "bg-admin1@contoso.onmicrosoft.com",
                "displayName": "Break Glass 1",
            },
            BG2: {
                "id": BG2,
                "userPrincipalName": "bg-admin2@contoso.onmicrosoft.com",
                "displayName": "Break Glass 2",
            },
            ADA: {
                "id": ADA,
                "userPrincipalName": "ada@contoso.com",
                "displayName": "Ada Lovelace",
                "department": "Finance",
                "usageLocation": "GB",
            },
            BOB: {
                "id": BOB,
                "userPrincipalName": "bob@contoso.com",
                "displayName": "Bob",
                "usageLocation": "US",
            },
        }
        graph.members = {EXCLUSION: [BG1, BG2], PILOT: [BOB], FINANCE: [ADA]}
        graph.methods = {ADA: ["#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"], BOB: []}
        graph.roles = {ADA: [], BOB: ["Exchange Administrator"]}
        return graph

    async def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append(path)
        if self.fail_on and path.startswith(self.fail_on):
            raise RetryableError(f"{self.fail_on} is down")
        base, _, query = path.partition("?")
        query = unquote(query)
        if base in _SOURCES:
            return self._page(base, query)
        if base == "/groups":
            name = re.search(r"displayName eq '(.*?)'", query)
            gid = GROUPS.get(name.group(1).replace("''", "'")) if name else None
            return {"value": [{"id": gid}] if gid else []}
        if match := re.fullmatch(r"/groups/([^/]+)/members", base):
            return {"value": [{"id": m} for m in self.members.get(match.group(1), [])]}
        if match := re.fullmatch(r"/users/([^/]+)", base):
            key = match.group(1)
            return next((u for u in self.users.values() if key in (u["id"], u["userPrincipalName"])), None)
        if match := re.fullmatch(r"/users/([^/]+)/authentication/methods", base):
            kinds = ["#microsoft.graph.passwordAuthenticationMethod", *self.methods.get(match.group(1), [])]
            return {"value": [{"@odata.type": k} for k in kinds]}
        if match := re.fullmatch(r"/users/([^/]+)/transitiveMemberOf/microsoft.graph.directoryRole", base):
            return {"value": [{"displayName": r} for r in self.roles.get(match.group(1), [])]}
        raise AssertionError(f"unexpected GET {path}")

    def _page(self, base: str, query: str) -> dict[str, Any]:
        attribute, stamp_field = _SOURCES[base]
        since = re.search(r"ge ([^&\s]+)", query)
        skip = int(m.group(1)) if (m := re.search(r"\$skip=(\d+)", query)) else 0
        floor = datetime.fromisoformat(since.group(1).replace("Z", "+00:00")) if since else None
        until = re.search(r"le ([^&\s]+)", query)
        ceiling = datetime.fromisoformat(until.group(1).replace("Z", "+00:00")) if until else None

        def inside(item: dict[str, Any]) -> bool:
            stamp = datetime.fromisoformat(item[stamp_field].replace("Z", "+00:00"))
            return (floor is None or stamp >= floor) and (ceiling is None or stamp <= ceiling)

        items = [i for i in getattr(self, attribute) if inside(i)]
        page = items[skip : skip + self.page_size]
        out: dict[str, Any] = {"value": page}
        if skip + self.page_size < len(items):
            filt = since.group(0) if since else ""
            after = skip + self.page_size
            out["@odata.nextLink"] = (
                f"https://graph.microsoft.com/v1.0{base}?$filter={stamp_field} {filt}&$skip={after}"
            )
        return out

    async def post(self, path: str, body: Any) -> dict[str, Any] | None:
        self.calls.append(f"POST {path}")
        self.posts.append((path, body))
        return {}


def detection(n: int, user: str, level: str, at: str, kind: str = "unfamiliarFeatures") -> dict[str, Any]:
    return {
        "id": f"det-{n}",
        "riskEventType": kind,
        "riskLevel": level,
        "riskState": "atRisk",
        "detectedDateTime": at,
        "userId": user,
        "userPrincipalName": None,
        "ipAddress": "203.0.113.9",
        "location": {"city": "Amsterdam", "countryOrRegion": "NL"},
    }


def sign_in(
    n: int,
    user: str,
    at: str,
    *,
    app: str = "Browser",
    country: str = "GB",
    managed: bool = True,
    error: int = 0,
) -> dict[str, Any]:
    return {
        "id": f"si-{n}",
        "createdDateTime": at,
        "userId": user,
        "userPrincipalName": None,
        "appDisplayName": "Office 365 Exchange Online",
        "clientAppUsed": app,
        "ipAddress": "198.51.100.7",
        "location": {"city": "X", "countryOrRegion": country},
        "deviceDetail": {"isManaged": managed, "isCompliant": managed},
        "status": {"errorCode": error},
    }

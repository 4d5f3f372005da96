"""Demo steps: a service desk reports an MFA ticket from a pilot member (signed webhook), and the demo
ends by writing the rollout report and saying where it is.

Both run on the live local stack: the ticket goes through ``POST /api/helpdesk/tickets`` on the
mini-host, signed with the secret of ``local/local.settings.json``, exactly as a service desk's
Standard Webhooks sender would; the report is written by ``waveguard report --html``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import httpx

from cli.main import main as waveguard_cli
from local.graph_emulator.permissions import ADMIN_HEADERS
from shared.config import load_plan_for, load_settings
from shared.helpdesk.sender import send_ticket

__all__ = ["REPORT_FILE", "show_helpdesk_ticket", "write_rollout_report"]

REPORT_FILE: Final = Path(__file__).resolve().parent.parent / ".stack" / "rollout-report.html"


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def show_helpdesk_ticket(host_url: str, environ: Mapping[str, str]) -> None:
    """A pilot member's "Authenticator" ticket, delivered twice (at-least-once): stored once."""
    _title("Helpdesk: a pilot member's MFA ticket from the service desk (signed webhook)")
    secret = environ.get("WAVEGUARD_HELPDESK_WEBHOOK_SECRET", "")
    if not secret:
        print("  no WAVEGUARD_HELPDESK_WEBHOOK_SECRET in the settings: the helpdesk ingress is off")
        return
    settings = load_settings(environ)
    pilot = load_plan_for(settings).waves[0]
    graph = settings.graph_base_url
    name = pilot.group.display_name or ""
    groups = httpx.get(
        f"{graph}/groups", params={"$filter": f"displayName eq '{name}'"}, headers=ADMIN_HEADERS
    ).json()["value"]
    if not groups:
        print(f"  the {pilot.name} group does not exist yet; no ticket sent")
        return
    members = httpx.get(
        f"{graph}/groups/{groups[0]['id']}/members",
        params={"$select": "userPrincipalName"},
        headers=ADMIN_HEADERS,
    ).json()["value"]
    upn = next((m["userPrincipalName"] for m in members if m.get("userPrincipalName")), None)
    if upn is None:
        print(f"  the {pilot.name} group has no members yet; no ticket sent")
        return
    ticket = {
        "id": f"INC-{uuid.uuid4().hex[:6].upper()}",
        "requesterUserPrincipalName": upn,
        "category": "MFA",
        "tags": ["authenticator"],
        "state": "open",
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "summary": "The Authenticator app keeps asking me to approve sign-ins",
    }
    api = f"{host_url}/api"
    first = send_ticket(api, secret, ticket)
    again = send_ticket(api, secret, ticket)
    print(
        f"  POST /api/helpdesk/tickets {ticket['id']} from {upn}: {first['outcome']} "
        f"(MFA-related: {first['mfaRelated']})"
    )
    print(f"  the same delivery again (at least once): {again['outcome']}")
    print(
        f"  it counts toward {pilot.name}'s maxMfaTicketsPer100Users gate when the plan sets one "
        "(`waves status`)"
    )


def write_rollout_report(environ: Mapping[str, str]) -> None:
    """``waveguard report --html``: one self-contained page, and where it is."""
    _title("The rollout report: waveguard report --html")
    REPORT_FILE.parent.mkdir(exist_ok=True)
    code = waveguard_cli(["report", "--html", str(REPORT_FILE)], environ=dict(environ))
    if code == 0:
        print(f"  open {REPORT_FILE} in a browser (no network needed); the app serves the same page at")
        print("  GET /api/report with the function key (x-functions-key header)")
    else:
        print(f"  waveguard report exited {code}")

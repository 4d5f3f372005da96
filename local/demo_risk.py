"""Demo step: a high-risk detection and a break-glass sign-in reach on-call; then one is resolved.

Runs on the live local stack (`make run`), whose risk timer polls Identity Protection and the
sign-in log every few seconds (``WAVEGUARD_RISK_POLL_SECONDS`` in ``local/local.settings.json``) and
whose receivers point at the local receiver sink. The step injects, through the Graph emulator's
admin API, what Identity Protection and the sign-in log would report, and prints what arrives at
the sink: the PagerDuty trigger (its ``dedup_key`` is the alert group) and the Teams card. Then an
administrator dismisses the user's risk through Graph, as in the Entra portal; the next poll
resolves the alert and PagerDuty gets the resolve with the same ``dedup_key``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

from local.graph_emulator.permissions import ADMIN_HEADERS

__all__ = ["show_risk_to_on_call"]

WAIT_SECONDS: Final = 60.0


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def _wait[T](what: str, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    print(f"  {what}: nothing within {timeout:.0f} s (check .stack/host.log)", flush=True)
    return None


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def show_risk_to_on_call(environ: Mapping[str, str], *, cli: str = "waveguard") -> None:
    """Inject a high-risk detection and a break-glass sign-in; show PagerDuty and Teams; resolve one."""
    graph_url = environ["GRAPH_BASE_URL"].rstrip("/")
    admin_url = graph_url.removesuffix("/v1.0") + "/_emulator"
    sink_url = environ["PAGERDUTY_URL"].removesuffix("/v2/enqueue")
    _title("Risky sign-ins to on-call: Identity Protection → triage → PagerDuty and Teams")
    with httpx.Client(timeout=10, headers=ADMIN_HEADERS) as http:
        users = http.get(
            f"{graph_url}/users",
            params={
                "$filter": "department eq 'Finance'",
                "$select": "id,userPrincipalName,displayName",
                "$top": "1",
            },
        ).json()["value"]
        if not users:
            print("  no Finance user in the tenant; skipped")
            return
        user = users[0]
        break_glass = http.get(
            f"{graph_url}/users/bg-admin1@contoso.onmicrosoft.com", params={"$select": "id"}
        ).json()
        seen = {e["seq"] for e in http.get(f"{sink_url}/_sink/events").json()["value"]}
        now = datetime.now(UTC)
        print(f"  Identity Protection flags {user['displayName']} ({user['userPrincipalName']}): high risk,")
        print("  anonymizedIPAddress; and bg-admin1 signs in from an unmanaged device ...", flush=True)
        injected = time.monotonic()
        http.post(
            f"{admin_url}/risk-detections",
            json={
                "userId": user["id"],
                "riskLevel": "high",
                "riskEventType": "anonymizedIPAddress",
                "ipAddress": "185.220.101.4",
                "location": {"countryOrRegion": "NL"},
            },
        ).raise_for_status()
        http.post(
            f"{admin_url}/signins",
            json={
                "userId": break_glass["id"],
                "createdDateTime": _z(now - timedelta(seconds=5)),
                "appDisplayName": "Azure Portal",
                "ipAddress": "203.0.113.50",
                "deviceDetail": {"isManaged": False},
            },
        ).raise_for_status()

        def new_events(kind: str) -> list[dict[str, Any]]:
            events = http.get(f"{sink_url}/_sink/events", params={"kind": kind}).json()["value"]
            return [e for e in events if e["seq"] not in seen and e["status"] < 300]

        def trigger_for(name: str) -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in new_events("pagerduty")
                    if e["body"].get("event_action") == "trigger" and name in e["body"]["payload"]["summary"]
                ),
                None,
            )

        at_risk = _wait("the PagerDuty trigger for UserAtRisk", lambda: trigger_for("UserAtRisk"))
        if at_risk is None:
            return
        print(f"  PagerDuty trigger after {time.monotonic() - injected:.1f} s (poll + group wait):")
        _print_trigger(at_risk["body"])
        bg = _wait("the PagerDuty trigger for BreakGlassSignIn", lambda: trigger_for("BreakGlassSignIn"))
        if bg is not None:
            _print_trigger(bg["body"])
        card = _wait(
            "the Teams card",
            lambda: next(
                (e for e in new_events("teams") if "BreakGlassSignIn" in json.dumps(e["body"])), None
            ),
            timeout=15,
        )
        if card is not None:
            content = card["body"]["attachments"][0]["content"]
            print(f"  Teams card: {content['body'][0]['text']}")
            for block in content["body"][2:4]:
                print(f"    {block.get('text', '')[:110]}")
        print(
            f"  {user['displayName']}'s risk is dismissed through Graph (as in the Entra portal) ...",
            flush=True,
        )
        dismissed = time.monotonic()
        http.post(
            f"{graph_url}/identityProtection/riskyUsers/dismiss", json={"userIds": [user["id"]]}
        ).raise_for_status()
        key = at_risk["body"]["dedup_key"]
        resolve = _wait(
            "the PagerDuty resolve",
            lambda: next(
                (
                    e
                    for e in new_events("pagerduty")
                    if e["body"].get("event_action") == "resolve" and e["body"]["dedup_key"] == key
                ),
                None,
            ),
        )
        if resolve is not None:
            print(f"  PagerDuty resolve for dedup_key {key} after {time.monotonic() - dismissed:.1f} s")
        incidents = http.get(f"{sink_url}/_sink/incidents").json()["value"]
        mine = [i for i in incidents if i["dedupKey"] == key]
        if mine:
            print(f"  incident #{mine[0]['number']}: {mine[0]['status']} ({mine[0]['eventCount']} events)")
        print(f"  every delivery: {sink_url}/_sink/events ; the alerts: `{cli} alerts list`")


def _print_trigger(body: dict[str, Any]) -> None:
    payload = body["payload"]
    print(f"    {payload['severity']:<8} dedup_key={body['dedup_key']}")
    print(f"    {payload['summary'][:140]}")

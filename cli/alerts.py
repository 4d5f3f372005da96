"""`waveguard alerts list|show|ack|resolve [--json]`: the alerts the alert router holds.

The router records every alert it routes in ``wgstate`` (namespace ``alerts-active``, one record per
alert key: status, severity, summary, labels, details, groups, ack) and groups it in
``alert-groups`` (receiver, last notification, next flush). An alert is named by its record id or
any unique prefix of it of at least 4 characters (``list`` shows the shortest unique prefix of 8 or
more), or by its key.

- ``list``: the alerts, newest first (``--status``, ``--severity`` filter).
- ``show``: one record whole, its groups, and the audit entries about it since it started.
- ``ack``: records who took it (``ack: {by, at, comment}``) on the record, with an ETag-conditional
  write retried on conflict (the router keeps ``ack`` when it rewrites the record). Audited.
- ``resolve``: puts the resolution on the ``alerts`` queue, so the router resolves it through its
  normal path (the receivers are told: PagerDuty resolves, Teams/Slack get "resolved"). Audited.

Acking an acked alert and resolving a resolved one change nothing (and say so).

Exit codes: 0 done (or nothing to do); 1 storage or the queue failed; 2 usage or input error (an
unknown or ambiguous id, a bad option value; the message names it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail
from shared.alerting.model import SEVERITIES, Alert, raise_alert
from shared.alerting.router import ACTIVE_NAMESPACE, GROUPS_NAMESPACE
from shared.config import load_settings
from shared.errors import ConfigError, InvalidPayloadError, NotFoundError, WaveGuardError
from shared.queues import AsyncQueueSender, Sender, get_queue_sender
from shared.state import (
    AsyncAuditPort,
    AsyncKeyValuePort,
    AuditEntry,
    ConcurrencyError,
    StateStores,
    build_state,
    iso,
    parse_iso,
    utc_now,
)

__all__ = [
    "ACK_ATTEMPTS",
    "AUDIT_SCAN_LIMIT",
    "MIN_PREFIX",
    "SHORT_ID",
    "AuditScan",
    "ack_alert",
    "add_parser",
    "audit_about",
    "find_alert",
    "group_views",
    "list_alerts",
    "resolution_of",
    "short_ids",
]

SHORT_ID: Final = 8  # the shortest id `list` shows (longer when 8 characters are not unique)
MIN_PREFIX: Final = 4  # the shortest prefix an id may be given as
ACK_ATTEMPTS: Final = 12
AUDIT_SCAN_LIMIT: Final = 1000  # the audit log is read newest first; it has no query by target
_STATUSES: Final = ("firing", "resolved", "all")
StatusFilter = Literal["firing", "resolved", "all"]


def add_parser(sub: Any) -> None:
    """Register ``waveguard alerts`` and its commands."""
    cmd = sub.add_parser(
        "alerts",
        help="the alerts the alert router holds: list, show, ack, resolve",
        description="The alerts the alert router holds (wgstate alerts-active). ID is a record id, "
        f"a unique prefix of one (at least {MIN_PREFIX} characters) or an alert key.",
        epilog="Exit codes: 0 done, 1 storage or queue failure, 2 unknown/ambiguous id or bad option.",
    )
    verbs = cmd.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="the alerts, newest first")
    listing.add_argument(
        "--status",
        default="all",
        choices=_STATUSES,
        help="only firing or only resolved alerts (default: all)",
    )
    listing.add_argument(
        "--severity",
        action="append",
        default=[],
        metavar="SEVERITY",
        help=f"only these severities ({', '.join(SEVERITIES)}); repeat or separate with commas",
    )
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(run=run_list)
    show = verbs.add_parser("show", help="one alert whole: record, groups, audit entries")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(run=run_show)
    ack = verbs.add_parser("ack", help="acknowledge an alert (recorded on it and audited)")
    ack.add_argument("id", metavar="ID")
    ack.add_argument("--by", metavar="NAME", help="who takes it (default: the operator, cli:<user>)")
    ack.add_argument("--comment", default="", metavar="TEXT", help="a note kept with the ack")
    ack.add_argument("--json", action="store_true", help="print the outcome as JSON")
    ack.set_defaults(run=run_ack)
    resolve = verbs.add_parser(
        "resolve", help="resolve an alert through the router (the receivers are told); audited"
    )
    resolve.add_argument("id", metavar="ID")
    resolve.add_argument("--comment", default="", metavar="TEXT", help="why (kept in the audit log)")
    resolve.add_argument("--json", action="store_true", help="print the outcome as JSON")
    resolve.set_defaults(run=run_resolve)


# --- reading and naming -------------------------------------------------------------------------


async def list_alerts(kv: AsyncKeyValuePort) -> list[dict[str, Any]]:
    """Every record the router holds, newest first (by start, then by last update)."""
    records = [dict(v) for v in await kv.values(ACTIVE_NAMESPACE) if isinstance(v, dict) and v.get("id")]
    records.sort(key=lambda r: (str(r.get("startsAt") or ""), str(r.get("updatedAt") or "")), reverse=True)
    return records


def short_ids(ids: Iterable[str], minimum: int = SHORT_ID) -> dict[str, str]:
    """Each id's shortest prefix, ``minimum`` characters or more, that no other id starts with."""
    pool = sorted(set(ids))
    out: dict[str, str] = {}
    for index, full in enumerate(pool):
        neighbours = pool[max(0, index - 1) : index] + pool[index + 1 : index + 2]
        common = max((_common_prefix(full, other) for other in neighbours), default=0)
        out[full] = full[: max(minimum, common + 1)]
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def find_alert(records: Sequence[Mapping[str, Any]], ref: str) -> Mapping[str, Any]:
    """The record ``ref`` names: its id, its key, or a unique id prefix of ``MIN_PREFIX``+ characters.

    Raises:
        NotFoundError: no record, or several, match (field ``id``; the message names ``ref``).
    """
    ref = ref.strip()
    exact = [r for r in records if ref in (r.get("id"), r.get("key"))]
    if len(exact) == 1:
        return exact[0]
    hint = "see `waveguard alerts list`"
    if not exact and len(ref) < MIN_PREFIX:
        raise NotFoundError(
            f"id {ref!r}: give at least {MIN_PREFIX} characters of the alert id ({hint})", field="id"
        )
    found = exact or [r for r in records if str(r.get("id", "")).startswith(ref.lower())]
    if not found:
        raise NotFoundError(f"id {ref!r}: the router holds no such alert ({hint})", field="id")
    if len(found) > 1:
        shorts = short_ids(str(r["id"]) for r in found)
        names = ", ".join(f"{shorts[str(r['id'])]} ({_alertname(r)})" for r in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise NotFoundError(
            f"id {ref!r} is ambiguous: it matches {len(found)} alerts: {names}{more}; give more characters",
            field="id",
        )
    return found[0]


def _alertname(record: Mapping[str, Any]) -> str:
    labels = record.get("labels") or {}
    return str(labels.get("alertname") or record.get("key") or "?")


def _labels(record: Mapping[str, Any]) -> dict[str, str]:
    labels = record.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def group_views(
    record: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The record's groups as ``show`` prints them; a group flushed and deleted is ``present: false``."""
    views: list[dict[str, Any]] = []
    for gid in record.get("groups") or []:
        group = groups.get(str(gid))
        if group is None:
            views.append({"id": str(gid), "present": False})
            continue
        member = (group.get("alerts") or {}).get(str(record.get("id"))) or {}
        views.append(
            {
                "id": str(gid),
                "present": True,
                "receiver": group.get("receiver"),
                "route": group.get("path"),
                "groupLabels": group.get("groupLabels") or {},
                "alerts": len(group.get("alerts") or {}),
                "alertStatus": member.get("status"),
                "notifications": int(group.get("notifications") or 0),
                "lastNotifiedAt": group.get("lastNotifiedAt"),
                "nextFlushAt": group.get("nextFlushAt"),
            }
        )
    return views


async def _read_groups(
    kv: AsyncKeyValuePort, record: Mapping[str, Any]
) -> dict[str, Mapping[str, Any] | None]:
    out: dict[str, Mapping[str, Any] | None] = {}
    for gid in record.get("groups") or []:
        stored = await kv.get(GROUPS_NAMESPACE, str(gid))
        out[str(gid)] = stored.value if stored is not None and isinstance(stored.value, dict) else None
    return out


@dataclass(frozen=True, slots=True)
class AuditScan:
    """The audit entries about one alert, found by reading the log newest first since it started.

    The audit log cannot be queried by target: ``scanned`` entries were read (at most
    ``AUDIT_SCAN_LIMIT``); ``complete`` is False when the limit cut the scan short.
    """

    since: datetime | None
    scanned: int
    entries: list[AuditEntry]

    @property
    def complete(self) -> bool:
        return self.scanned < AUDIT_SCAN_LIMIT

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since) if self.since else None,
            "scanned": self.scanned,
            "complete": self.complete,
            "entries": [_entry_json(e) for e in self.entries],
        }


def audit_about(record: Mapping[str, Any], entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """The entries naming the alert (its key or id, ``details.alertId``) or one of its groups."""
    names = {str(record.get("id")), str(record.get("key"))[:200]}
    groups = {str(g) for g in record.get("groups") or []}
    return [
        e
        for e in entries
        if e.target in names or e.target in groups or e.details.get("alertId") == record.get("id")
    ]


async def _audit_scan(audit: AsyncAuditPort, record: Mapping[str, Any]) -> AuditScan:
    started = parse_iso(record.get("startsAt"))
    since = (started - timedelta(minutes=1)).astimezone(UTC) if started and started.tzinfo else None
    entries = await audit.list(since=since, limit=AUDIT_SCAN_LIMIT)
    return AuditScan(since, len(entries), audit_about(record, entries))


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at) if entry.at else None,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "correlationId": entry.correlation_id,
        "details": dict(entry.details),
    }


# --- changing -----------------------------------------------------------------------------------


async def ack_alert(
    kv: AsyncKeyValuePort, record_id: str, *, by: str, comment: str, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Write ``ack: {by, at, comment}`` into the record unless it is acked; (record, whether written).

    The write is conditional on the ETag read (the router rewrites the same record when the alert
    comes again); a lost condition re-reads and tries again.

    Raises:
        NotFoundError: the record is gone (the router dropped it once its resolution was notified).
        ConcurrencyError: the record kept changing over ``ACK_ATTEMPTS`` tries.
        RetryableError: storage failed.
    """
    for _ in range(ACK_ATTEMPTS):
        stored = await kv.get(ACTIVE_NAMESPACE, record_id)
        if stored is None or not isinstance(stored.value, dict):
            raise NotFoundError(
                f"id {record_id!r}: the router no longer holds this alert (resolved and notified)",
                field="id",
            )
        record = dict(stored.value)
        if record.get("ack"):
            return record, False
        record["ack"] = {"by": by, "at": iso(now), "comment": comment}
        try:
            await kv.put(ACTIVE_NAMESPACE, record_id, record, if_match=stored.etag)
        except ConcurrencyError:
            await asyncio.sleep(random.uniform(0.005, 0.05))
            continue
        return record, True
    raise ConcurrencyError(f"alert {record_id} kept changing while acking it; try again")


def resolution_of(record: Mapping[str, Any], *, now: datetime, by: str, comment: str) -> Alert:
    """The ``resolved`` alert for a record: same key, labels, severity, summary and source.

    Raises:
        InvalidPayloadError: the record lacks what an alert needs (key, summary, source, severity).
    """
    details = dict(record.get("details") or {})
    details["resolvedBy"] = by
    if comment:
        details["resolveComment"] = comment
    try:
        return Alert(
            key=str(record.get("key") or ""),
            severity=record.get("severity"),  # type: ignore[arg-type]  # validated by Alert
            summary=str(record.get("summary") or ""),
            source=str(record.get("source") or ""),
            labels=_labels(record),
            details=details,
            occurred_at=now,
            status="resolved",
        )
    except ValueError as exc:
        raise InvalidPayloadError.for_field("alert", f"the record cannot be resolved: {exc}") from None


# --- the commands -------------------------------------------------------------------------------


def _stores(env: Mapping[str, str]) -> StateStores:
    return build_state(load_settings(env))


def _correlation_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def _severities(given: Sequence[str]) -> set[str]:
    """The ``--severity`` values (repeated and/or comma-separated).

    Raises:
        InvalidPayloadError: a value is not a severity (field ``--severity``).
    """
    wanted = {s.strip().lower() for value in given for s in value.split(",") if s.strip()}
    unknown = sorted(wanted - set(SEVERITIES))
    if unknown:
        raise InvalidPayloadError.for_field(
            "--severity", f"{', '.join(unknown)}: expected one of {', '.join(SEVERITIES)}"
        )
    return wanted


def _when(text: object) -> str:
    moment = parse_iso(text)
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ID 8, SEVERITY 8, ALERTNAME 22, STATUS 8, WAVE 10, USER 18, STARTED (UTC) 16, ACK 3: 100 columns.
_ROW: Final = "{id:<8} {severity:<8} {alertname:<22} {status:<8} {wave:<10} {user:<18} {started:<16} {ack}"


def _table(records: Sequence[Mapping[str, Any]], shorts: Mapping[str, str]) -> str:
    lines = [
        _ROW.format(
            id="ID",
            severity="SEVERITY",
            alertname="ALERTNAME",
            status="STATUS",
            wave="WAVE",
            user="USER",
            started="STARTED (UTC)",
            ack="ACK",
        )
    ]
    for r in records:
        labels = _labels(r)
        lines.append(
            _ROW.format(
                id=shorts[str(r["id"])],  # longer than 8 only when 8 are not unique: never cut
                severity=_cut(str(r.get("severity") or "-"), 8),
                alertname=_cut(_alertname(r), 22),
                status=_cut(str(r.get("status") or "-"), 8),
                wave=_cut(labels.get("wave") or "-", 10),
                user=_cut(labels.get("user") or "-", 18),
                started=_when(r.get("startsAt")),
                ack="yes" if r.get("ack") else "-",
            ).rstrip()
        )
    return "\n".join(lines)


def _json(record: Mapping[str, Any], short: str) -> dict[str, Any]:
    return {"shortId": short, **record}


def run_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        severities = _severities(args.severity)
        records = asyncio.run(list_alerts(_stores(env).aio.kv))
    except (ConfigError, InvalidPayloadError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"alerts list: {exc}", EXIT_FAILED)
    shorts = short_ids(str(r["id"]) for r in records)  # unique among every held alert, not the shown
    shown = [
        r
        for r in records
        if (args.status == "all" or r.get("status") == args.status)
        and (not severities or r.get("severity") in severities)
    ]
    if args.json:
        print(json.dumps({"alerts": [_json(r, shorts[str(r["id"])]) for r in shown]}, indent=2))
    elif not shown:
        print("no alerts" if not records else f"no alerts match ({len(records)} held)")
    else:
        print(_table(shown, shorts))
    return EXIT_OK


def run_show(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        stores = _stores(env)
        records = asyncio.run(list_alerts(stores.aio.kv))
        record = find_alert(records, args.id)
        groups = group_views(record, asyncio.run(_read_groups(stores.aio.kv, record)))
        scan = asyncio.run(_audit_scan(stores.aio.audit, record))
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"alerts show: {exc}", EXIT_FAILED)
    short = short_ids(str(r["id"]) for r in records)[str(record["id"])]
    if args.json:
        body = {"alert": _json(record, short), "groups": groups, "audit": scan.to_json()}
        print(json.dumps(body, indent=2))
        return EXIT_OK
    sys.stdout.write(_render_show(record, short, groups, scan))
    return EXIT_OK


def _render_show(
    record: Mapping[str, Any], short: str, groups: Sequence[Mapping[str, Any]], scan: AuditScan
) -> str:
    ack = record.get("ack") or None
    ack_text = (
        f"by {ack.get('by')} at {_when(ack.get('at'))}"
        + (f": {ack['comment']}" if ack.get("comment") else "")
        if isinstance(ack, dict)
        else "-"
    )
    ended = f", ended {_when(record.get('endsAt'))}" if record.get("endsAt") else ""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(_labels(record).items())) or "-"
    lines = [
        f"alert {short}  ({record.get('id')})",
        f"  alertname  {_alertname(record)}",
        f"  key        {record.get('key')}",
        f"  status     {record.get('status')} (since {_when(record.get('startsAt'))}{ended}; "
        f"updated {_when(record.get('updatedAt'))} UTC)",
        f"  severity   {record.get('severity')}",
        f"  summary    {record.get('summary')}",
        f"  source     {record.get('source')}",
        f"  labels     {labels}",
        f"  details    {json.dumps(record.get('details') or {}, sort_keys=True)}",
        f"  ack        {ack_text}",
        "groups:" if groups else "groups: none (the alert was silenced, inhibited or routed nowhere)",
    ]
    for g in groups:
        if not g["present"]:
            lines.append(f"  {g['id']}  gone (flushed and nothing firing)")
            continue
        last = _when(g["lastNotifiedAt"]) if g["lastNotifiedAt"] else "never"
        lines += [
            f"  {g['id']}  receiver {g['receiver']}  route {g['route']}",
            f"      last notified {last}, next flush {_when(g['nextFlushAt'])} UTC, "
            f"{g['notifications']} notification(s), {g['alerts']} alert(s) in the group",
        ]
    since = _when(iso(scan.since)) if scan.since else "the start"
    partial = "" if scan.complete else f"; only the newest {scan.scanned} entries were read"
    lines.append(f"audit (since {since} UTC{partial}):")
    lines += [
        f"  {_when(iso(e.at)) if e.at else '-'}  {e.actor:<26} {e.action:<16} {_cut(e.reason, 60)}"
        for e in scan.entries
    ] or ["  none"]
    return "\n".join(lines) + "\n"


def run_ack(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    actor = actor_of(env)
    by = (args.by or "").strip() or actor
    try:
        stores = _stores(env)
        records = asyncio.run(list_alerts(stores.aio.kv))
        found = find_alert(records, args.id)
        short = short_ids(str(r["id"]) for r in records)[str(found["id"])]
        record, changed = asyncio.run(
            ack_alert(stores.aio.kv, str(found["id"]), by=by, comment=args.comment, now=utc_now())
        )
        if changed:
            stores.audit.append(
                AuditEntry(
                    actor=actor,
                    action="alert.ack",
                    target=str(record["key"])[:200],
                    reason=args.comment or "acknowledged",
                    correlation_id=_correlation_id(),
                    details={"alertId": record["id"], "by": by},
                )
            )
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"alerts ack {args.id}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps({"changed": changed, "alert": _json(record, short)}, indent=2))
    elif changed:
        print(f"acknowledged {short} ({_alertname(record)}) as {by}")
    else:
        ack = record["ack"]
        print(
            f"{short} ({_alertname(record)}) is already acknowledged by {ack.get('by')} "
            f"at {_when(ack.get('at'))} UTC; nothing to do"
        )
    return EXIT_OK


def run_resolve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    actor = actor_of(env)
    try:
        settings = load_settings(env)
        stores = build_state(settings)
        records = asyncio.run(list_alerts(stores.aio.kv))
        record = find_alert(records, args.id)
        short = short_ids(str(r["id"]) for r in records)[str(record["id"])]
        envelope_id: str | None = None
        if record.get("status") != "resolved":
            alert = resolution_of(record, now=utc_now(), by=actor, comment=args.comment)
            sender: Sender = AsyncQueueSender(get_queue_sender(settings))
            envelope_id = asyncio.run(raise_alert(sender, alert)).id
            stores.audit.append(
                AuditEntry(
                    actor=actor,
                    action="alert.resolve",
                    target=alert.key[:200],
                    reason=args.comment or "resolved from the CLI",
                    correlation_id=_correlation_id(),
                    details={"alertId": record["id"], "envelopeId": envelope_id, "queue": "alerts"},
                )
            )
    except (ConfigError, NotFoundError, InvalidPayloadError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"alerts resolve {args.id}: {exc}", EXIT_FAILED)
    changed = envelope_id is not None
    if args.json:
        body: dict[str, Any] = {"changed": changed, "alert": _json(record, short)}
        body["envelope"] = {"id": envelope_id, "queue": "alerts"} if changed else None
        print(json.dumps(body, indent=2))
    elif changed:
        print(
            f"resolution of {short} ({_alertname(record)}) queued on alerts (envelope {envelope_id}); "
            "the router resolves it and tells its receivers"
        )
    else:
        print(
            f"{short} ({_alertname(record)}) is already resolved "
            f"(at {_when(record.get('endsAt'))} UTC); nothing to do"
        )
    return EXIT_OK

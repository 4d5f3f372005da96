"""`waveguard silence add|list|expire [--json]`: mute the alerts that match, for a while.

A silence is a set of matchers (``label=value``, ``label!=value``, ``label=~regex``,
``label!~regex``; regexes fully anchored, as in the plan) and a window: the alert router neither
delivers nor groups a firing alert every matcher of which holds while the window is open (it audits
``alert.silenced``). Resolutions are never silenced.

- ``add``: a run-time silence (``wgstate``, namespace ``alert-silences``), starting now and lasting
  ``--duration`` (at most 90 days) or until ``--ends-at``; a ``--comment`` is required. Prints the
  silence id. Audited (``silence.add``).
- ``list``: the silences in force, the plan's (``alerting.silences``, ids ``plan:<n>``, marked
  ``plan``) with the run-time ones; ``--all`` adds the expired ones.
- ``expire``: ends a run-time silence now (it stays listed under ``--all``). Audited
  (``silence.expire``). The plan's silences end by editing the plan.

Exit codes: 0 done (or nothing to do); 1 storage failed; 2 usage or input error (the message names
the option: a bad ``--matcher``, no ``--comment``, a ``--duration`` not over 0 or over 90 days, an
``--ends-at`` in the past, an unknown silence id).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, actor_of, fail
from shared.alerting.silences import StoredSilence, add_silence, expire_silence, list_silences
from shared.config import Matcher, Silence, load_plan_for, load_settings
from shared.errors import ConfigError, InvalidPayloadError, NotFoundError, WaveGuardError
from shared.state import AuditEntry, build_state, iso, utc_now

__all__ = [
    "MAX_DURATION",
    "PLAN_PREFIX",
    "SilenceView",
    "add_parser",
    "parse_duration",
    "parse_ends_at",
    "parse_matchers",
    "silence_views",
]

MAX_DURATION: Final = timedelta(days=90)
PLAN_PREFIX: Final = "plan:"
_MIN_PREFIX: Final = 4
_WIDTH: Final = 100  # `list` lines are cut to it (--json has everything)
_DURATION: Final = re.compile(r"^(?P<sign>-)?(?P<parts>(?:\d+[wdhms])+)$")
_UNITS: Final = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
SilenceStatus = Literal["active", "pending", "expired"]


def add_parser(sub: Any) -> None:
    """Register ``waveguard silence`` and its commands."""
    cmd = sub.add_parser(
        "silence",
        help="mute matching alerts for a while: add, list, expire",
        description="Silences: the alert router neither delivers nor groups a firing alert that "
        "every matcher of an open silence holds for. Matchers: label=value, label!=value, "
        "label=~regex, label!~regex (regexes fully anchored).",
        epilog="Exit codes: 0 done, 1 storage failure, 2 bad option (the message names it) or unknown id.",
    )
    verbs = cmd.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser(
        "add",
        help="mute matching alerts from now on; prints the silence id",
        description="Mute the alerts every --matcher holds for, from now for --duration (at most "
        "90 days) or until --ends-at. Prints the silence id.",
    )
    add.add_argument(
        "--matcher",
        action="append",
        default=[],
        metavar="MATCHER",
        help="label=value, label!=value, label=~regex or label!~regex; repeat for more (all must hold)",
    )
    add.add_argument("--duration", metavar="DURATION", help="how long: e.g. 30m, 2h, 1d12h, 2w (at most 90d)")
    add.add_argument(
        "--ends-at", metavar="TIME", help="until when: ISO 8601 with a time zone, e.g. 2026-12-24T18:00:00Z"
    )
    add.add_argument("--comment", metavar="TEXT", help="why the alerts are muted (required; audited)")
    add.add_argument("--by", metavar="NAME", help="who mutes them (default: the operator, cli:<user>)")
    add.add_argument("--json", action="store_true", help="print the silence as JSON")
    add.set_defaults(run=run_add)
    listing = verbs.add_parser("list", help="the silences in force (the plan's too)")
    listing.add_argument("--all", action="store_true", help="the expired ones too")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(run=run_list)
    expire = verbs.add_parser("expire", help="end a silence now (the plan's: edit the plan)")
    expire.add_argument(
        "id", metavar="ID", help=f"the silence id (or a unique prefix of {_MIN_PREFIX}+ characters)"
    )
    expire.add_argument("--comment", default="", metavar="TEXT", help="why (kept in the audit log)")
    expire.add_argument("--json", action="store_true", help="print the silence as JSON")
    expire.set_defaults(run=run_expire)


# --- option values ------------------------------------------------------------------------------


def parse_matchers(texts: Sequence[str]) -> list[Matcher]:
    """The ``--matcher`` values, parsed.

    Raises:
        InvalidPayloadError: none given, one does not parse, or all of them also match alerts
            without their labels (such a silence would mute nearly everything); field ``--matcher``.
    """
    if not texts:
        raise InvalidPayloadError.for_field(
            "--matcher", "give at least one, e.g. --matcher 'alertname=RiskySignIn'"
        )
    matchers: list[Matcher] = []
    for text in texts:
        try:
            matchers.append(Matcher.parse(text))
        except ValueError as exc:
            raise InvalidPayloadError.for_field("--matcher", str(exc)) from None
    if all(m.matches({}) for m in matchers):
        raise InvalidPayloadError.for_field(
            "--matcher",
            f"{', '.join(map(str, matchers))} also match alerts without those labels, which would mute "
            "nearly everything; add one that names what to mute, e.g. alertname=RiskySignIn",
        )
    return matchers


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d12h``, ``2w`` ...: over 0 and at most ``MAX_DURATION``.

    Raises:
        InvalidPayloadError: not a duration, not over 0, or over 90 days (field ``--duration``).
    """
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise InvalidPayloadError.for_field(
            "--duration", f"expected a duration such as 30m, 2h, 1d12h or 2w, got {text!r}"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([wdhms])", match["parts"]))
    if match["sign"]:
        seconds = -seconds
    if seconds <= 0:
        raise InvalidPayloadError.for_field("--duration", f"must be longer than 0, got {text!r}")
    duration = timedelta(seconds=seconds)
    if duration > MAX_DURATION:
        raise InvalidPayloadError.for_field("--duration", f"at most 90 days (90d), got {text!r}")
    return duration


def parse_ends_at(text: str, now: datetime) -> datetime:
    """An ISO 8601 time with a time zone, after ``now`` and at most 90 days after it.

    Raises:
        InvalidPayloadError: not such a time, in the past, or too far (field ``--ends-at``).
    """
    example = "e.g. 2026-12-24T18:00:00Z"
    try:
        ends = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidPayloadError.for_field(
            "--ends-at", f"expected an ISO 8601 time with a time zone ({example}), got {text!r}"
        ) from None
    if ends.tzinfo is None:
        raise InvalidPayloadError.for_field("--ends-at", f"{text!r} needs a time zone ({example})")
    if ends <= now:
        raise InvalidPayloadError.for_field(
            "--ends-at", f"{text!r} is in the past (now is {now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})"
        )
    if ends - now > MAX_DURATION:
        raise InvalidPayloadError.for_field("--ends-at", f"{text!r} is more than 90 days away")
    return ends.astimezone(UTC)


def _window(args: argparse.Namespace, now: datetime) -> datetime:
    if args.duration is not None and args.ends_at is not None:
        raise InvalidPayloadError.for_field("--duration/--ends-at", "give one of them, not both")
    if args.duration is not None:
        return now + parse_duration(args.duration)
    if args.ends_at is not None:
        return parse_ends_at(args.ends_at, now)
    raise InvalidPayloadError.for_field(
        "--duration/--ends-at", "give how long (--duration 2h) or until when (--ends-at 2026-12-24T18:00:00Z)"
    )


# --- views --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SilenceView:
    """A silence as ``list`` shows it: a run-time one or one of the plan's (``from_plan``)."""

    id: str
    matchers: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime
    comment: str
    created_by: str
    status: SilenceStatus
    from_plan: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": list(self.matchers),
            "startsAt": iso(self.starts_at) if self.starts_at else None,
            "endsAt": iso(self.ends_at),
            "comment": self.comment,
            "createdBy": self.created_by,
            "status": self.status,
            "fromPlan": self.from_plan,
        }


def _status(starts_at: datetime | None, ends_at: datetime, now: datetime) -> SilenceStatus:
    if now >= ends_at:
        return "expired"
    return "pending" if starts_at is not None and now < starts_at else "active"


def _stored_view(s: StoredSilence, now: datetime) -> SilenceView:
    return SilenceView(
        s.id,
        tuple(map(str, s.matchers)),
        s.starts_at,
        s.ends_at,
        s.comment,
        s.created_by,
        _status(s.starts_at, s.ends_at, now),
        from_plan=False,
    )


def silence_views(
    plan: Sequence[Silence], stored: Sequence[StoredSilence], now: datetime, *, include_expired: bool
) -> list[SilenceView]:
    """The plan's silences (ids ``plan:<index>``) and the run-time ones, soonest ending first.

    Without ``include_expired`` only those in force at ``now`` (as ``active_silences`` sees them).
    """
    views = [
        SilenceView(
            f"{PLAN_PREFIX}{index}",
            tuple(map(str, s.matchers)),
            None,
            s.ends_at,
            s.comment,
            "plan",
            _status(None, s.ends_at, now),
            from_plan=True,
        )
        for index, s in enumerate(plan)
    ]
    views += [_stored_view(s, now) for s in stored]
    if not include_expired:
        views = [v for v in views if v.status == "active"]
    return sorted(views, key=lambda v: (v.ends_at, v.id))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _line(view: SilenceView) -> str:
    origin = "plan" if view.from_plan else view.created_by or "-"
    head = f"{view.id:<20} {view.status:<8} {_when(view.starts_at):<16}  {_when(view.ends_at):<16}  {origin}"
    what = f"    {' '.join(view.matchers)}  # {view.comment}"
    return f"{head}\n{what if len(what) <= _WIDTH else what[: _WIDTH - 1] + '…'}"


# --- the commands -------------------------------------------------------------------------------


def _correlation_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def run_add(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    now = utc_now()
    actor = actor_of(env)
    try:
        matchers = parse_matchers(args.matcher)
        if not (args.comment or "").strip():
            raise InvalidPayloadError.for_field("--comment", "say why the alerts are muted")
        ends_at = _window(args, now)
        stores = build_state(load_settings(env))
        by = (args.by or "").strip() or actor
        silence = asyncio.run(
            add_silence(
                stores.aio.kv,
                [str(m) for m in matchers],
                starts_at=now,
                ends_at=ends_at,
                comment=args.comment.strip(),
                created_by=by,
            )
        )
        stores.audit.append(
            AuditEntry(
                actor=actor,
                action="silence.add",
                target=silence.id,
                reason=silence.comment[:500],
                correlation_id=_correlation_id(),
                details={"matchers": [str(m) for m in matchers], "endsAt": iso(ends_at), "by": by},
            )
        )
    except (ConfigError, InvalidPayloadError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"silence add: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps(_stored_view(silence, now).to_json(), indent=2))
    else:
        print(silence.id)  # alone on stdout, for scripts: id=$(waveguard silence add ...)
        print(
            f"silence {silence.id} mutes {' '.join(map(str, silence.matchers))} "
            f"until {_when(silence.ends_at)} UTC",
            file=sys.stderr,
        )
    return EXIT_OK


def run_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    now = utc_now()
    try:
        settings = load_settings(env)
        plan = load_plan_for(settings).alerting.silences
        stored = asyncio.run(list_silences(build_state(settings).aio.kv))
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"silence list: {exc}", EXIT_FAILED)
    views = silence_views(plan, stored, now, include_expired=args.all)
    if args.json:
        print(json.dumps({"silences": [v.to_json() for v in views]}, indent=2))
    elif not views:
        print("no silences" if args.all else "no silences in force (--all lists the expired ones)")
    else:
        print(f"{'ID':<20} {'STATUS':<8} {'STARTS (UTC)':<16}  {'ENDS (UTC)':<16}  BY")
        for view in views:
            print(_line(view))
    return EXIT_OK


def _find(stored: Sequence[StoredSilence], ref: str) -> StoredSilence:
    ref = ref.strip()
    exact = [s for s in stored if s.id == ref]
    if exact:
        return exact[0]
    hint = "see `waveguard silence list --all`"
    if len(ref) < _MIN_PREFIX:
        raise NotFoundError(
            f"id {ref!r}: give at least {_MIN_PREFIX} characters of the silence id ({hint})", field="id"
        )
    found = [s for s in stored if s.id.startswith(ref) or s.id.removeprefix("silence-").startswith(ref)]
    if not found:
        raise NotFoundError(f"id {ref!r}: no such silence ({hint})", field="id")
    if len(found) > 1:
        names = ", ".join(s.id for s in found[:5])
        raise NotFoundError(f"id {ref!r} is ambiguous: it matches {names}; give more characters", field="id")
    return found[0]


def run_expire(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.id.strip().startswith(PLAN_PREFIX):
        return fail(
            f"id {args.id!r} is one of the plan's silences (alerting.silences): edit the plan to end it "
            "(remove it or move its endsAt), then deploy",
            EXIT_USAGE,
        )
    now = utc_now()
    actor = actor_of(env)
    try:
        stores = build_state(load_settings(env))
        silence = _find(asyncio.run(list_silences(stores.aio.kv)), args.id)
        changed = now < silence.ends_at
        if changed:
            silence = asyncio.run(expire_silence(stores.aio.kv, silence.id, now=now))
            stores.audit.append(
                AuditEntry(
                    actor=actor,
                    action="silence.expire",
                    target=silence.id,
                    reason=args.comment or "expired from the CLI",
                    correlation_id=_correlation_id(),
                    details={"matchers": [str(m) for m in silence.matchers], "endsAt": iso(silence.ends_at)},
                )
            )
    except (ConfigError, NotFoundError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except WaveGuardError as exc:
        return fail(f"silence expire {args.id}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps({"changed": changed, "silence": _stored_view(silence, now).to_json()}, indent=2))
    elif changed:
        print(f"expired {silence.id} ({' '.join(map(str, silence.matchers))})")
    else:
        print(f"{silence.id} already ended at {_when(silence.ends_at)} UTC; nothing to do")
    return EXIT_OK

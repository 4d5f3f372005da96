"""Plan section ``alerting``: an Alertmanager-like route tree, receivers and silences."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.config.base import ConfigModel, HttpUrl, Secret, SecretUrl, Upn

__all__ = [
    "DEFAULT_PAGERDUTY_URL",
    "DEFAULT_RATE_LIMITS",
    "AlertingConfig",
    "EmailReceiver",
    "InhibitRule",
    "Matcher",
    "PagerDutyReceiver",
    "RateLimit",
    "Receiver",
    "ReceiverKind",
    "Route",
    "Silence",
    "SlackReceiver",
    "TeamsReceiver",
    "WebhookReceiver",
]

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
ReceiverKind = Literal["pagerduty", "teams", "slack", "email", "webhook"]
_RECEIVER_KINDS: tuple[ReceiverKind, ...] = ("pagerduty", "teams", "slack", "email", "webhook")
_MATCHER = re.compile(r"^\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label=value``, ``label!=value``, ``label=~regex`` or ``label!~regex`` (regex fully anchored)."""

    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse one matcher string.

        Raises:
            ValueError: the text is not a matcher or its regex does not compile.
        """
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(
                f"expected label=value, label!=value, label=~regex or label!~regex, got {text!r}"
            )
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if match["op"] in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex in {text!r}: {exc}") from exc
        return cls(label=match["label"], op=match["op"], value=value)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the alert's labels satisfy this matcher (a missing label reads as "")."""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


def _parse_matchers(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    parsed: list[Any] = []
    for item in value:
        if isinstance(item, str):
            try:
                parsed.append(Matcher.parse(item))
            except ValueError as exc:
                raise PydanticCustomError("matcher", "{reason}", {"reason": str(exc)}) from exc
        else:
            parsed.append(item)
    return parsed


Matchers = Annotated[tuple[Matcher, ...], BeforeValidator(_parse_matchers)]


class Route(ConfigModel):
    """A node of the routing tree; unset values inherit from the parent once the plan is loaded."""

    receiver: str | None = None
    matchers: Matchers = ()
    group_by: list[str] = ["alertname"]
    # at most 7 days: a flush is a queue message delayed until due, and a queue delays 7 days at most
    group_wait_seconds: Annotated[int, Field(ge=0, le=604_000)] = 30
    group_interval_seconds: Annotated[int, Field(ge=1, le=604_000)] = 300
    repeat_interval_seconds: Annotated[int, Field(ge=1, le=604_000)] = 4 * 3600
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = []

    def walk(self) -> Iterator[Route]:
        """This route and every descendant, depth first."""
        yield self
        for child in self.routes:
            yield from child.walk()

    def inherit_from(self, parent: Route | None) -> Route:
        """A copy whose unset receiver and grouping values come from ``parent``, recursively."""
        inherited = {
            "receiver",
            "group_by",
            "group_wait_seconds",
            "group_interval_seconds",
            "repeat_interval_seconds",
        }
        update: dict[str, Any] = {}
        if parent is not None:
            update = {name: getattr(parent, name) for name in inherited - self.model_fields_set}
        resolved = self.model_copy(update=update)
        children = [child.inherit_from(resolved) for child in self.routes]
        return resolved.model_copy(update={"routes": children})


class PagerDutyReceiver(ConfigModel):
    """PagerDuty Events API v2; ``url`` is configurable so tests can point it at a local server."""

    routing_key: Secret
    url: HttpUrl = DEFAULT_PAGERDUTY_URL

    @model_validator(mode="after")
    def _key_length(self) -> Self:
        # PagerDuty refuses any other length with 400 ("Length of 'routing_key' is incorrect").
        if len(self.routing_key.get_secret_value()) != 32:
            raise PydanticCustomError(
                "routing_key", "an Events API v2 integration key is 32 characters (check the setting)"
            )
        return self


class TeamsReceiver(ConfigModel):
    """A Teams Workflows webhook (the URL carries its signature, so it is a secret)."""

    webhook_url: SecretUrl


class SlackReceiver(ConfigModel):
    """A Slack incoming webhook (the URL is the credential)."""

    webhook_url: SecretUrl


class EmailReceiver(ConfigModel):
    """E-mail through Graph ``sendMail`` from ``senderMailbox``."""

    to: Annotated[list[Upn], Field(min_length=1)]
    sender_mailbox: Upn


class WebhookReceiver(ConfigModel):
    """A generic JSON webhook, optionally signed with ``secret``."""

    url: HttpUrl
    secret: Secret | None = None


class RateLimit(ConfigModel):
    """At most ``count`` notifications per ``perSeconds`` to one receiver (storms fold into digests)."""

    count: Annotated[int, Field(ge=1, le=1000)]
    per_seconds: Annotated[float, Field(gt=0, le=86_400)]


# What each service documents (PagerDuty: about 120 events a minute per routing key; Slack: one
# message a second per webhook; Teams Workflows: about 4 a second), and conservative for the rest.
DEFAULT_RATE_LIMITS: Final[dict[str, RateLimit]] = {
    "pagerduty": RateLimit(count=120, per_seconds=60),
    "slack": RateLimit(count=1, per_seconds=1),
    "teams": RateLimit(count=4, per_seconds=1),
    "email": RateLimit(count=30, per_seconds=60),
    "webhook": RateLimit(count=10, per_seconds=1),
}


class Receiver(ConfigModel):
    """A named destination: exactly one of the receiver kinds, and its rate limit."""

    name: Annotated[str, Field(min_length=1)]
    pagerduty: PagerDutyReceiver | None = None
    teams: TeamsReceiver | None = None
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None
    webhook: WebhookReceiver | None = None
    rate_limit: RateLimit | None = None

    @property
    def limit(self) -> RateLimit:
        """The configured rate limit, else the kind's documented one."""
        return self.rate_limit or DEFAULT_RATE_LIMITS[self.kind]

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        given = [kind for kind in _RECEIVER_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "receiver_kind",
                "give exactly one of pagerduty, teams, slack, email, webhook (found {found})",
                {"found": ", ".join(given) or "none"},
            )
        return self

    @property
    def kind(self) -> ReceiverKind:
        """Which receiver kind this is."""
        return next(kind for kind in _RECEIVER_KINDS if getattr(self, kind) is not None)


class Silence(ConfigModel):
    """Mute alerts matching every matcher until ``endsAt``."""

    matchers: Annotated[Matchers, Field(min_length=1)]
    ends_at: datetime
    comment: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _aware_end(self) -> Self:
        if self.ends_at.tzinfo is None:
            raise PydanticCustomError("silence_end", "endsAt needs a time zone, e.g. 2026-12-24T18:00:00Z")
        return self


class InhibitRule(ConfigModel):
    """While an alert matching ``sourceMatchers`` fires, alerts matching ``targetMatchers`` with the
    same values for the ``equal`` labels are muted (e.g. a confirmed compromise mutes the lesser
    alerts about the same user)."""

    source_matchers: Annotated[Matchers, Field(min_length=1)]
    target_matchers: Annotated[Matchers, Field(min_length=1)]
    equal: list[str] = []


class AlertingConfig(ConfigModel):
    """Route tree, receivers, inhibition rules and silences; every receiver the tree names must exist."""

    route: Route
    receivers: Annotated[list[Receiver], Field(min_length=1)]
    inhibit_rules: list[InhibitRule] = []
    silences: list[Silence] = []

    @model_validator(mode="after")
    def _resolve_and_check(self) -> Self:
        if not self.route.receiver:
            raise PydanticCustomError(
                "route_receiver", "the root route needs a receiver (the default destination)"
            )
        names = [receiver.name for receiver in self.receivers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise PydanticCustomError(
                "receiver_name", "receiver names must be unique: {names}", {"names": ", ".join(duplicates)}
            )
        missing = sorted({r.receiver for r in self.route.walk() if r.receiver and r.receiver not in names})
        if missing:
            raise PydanticCustomError(
                "route_receiver",
                "route names receivers that do not exist: {missing} (known: {known})",
                {"missing": ", ".join(missing), "known": ", ".join(names)},
            )
        # Frozen model: resolve inheritance once so consumers never walk parents.
        object.__setattr__(self, "route", self.route.inherit_from(None))
        return self

    def receiver(self, name: str) -> Receiver:
        """The receiver called ``name``.

        Raises:
            KeyError: no receiver has that name.
        """
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)

"""Alertmanager's routing semantics over the plan's ``alerting`` section, as pure functions.

- ``matching_routes``: the root matches every alert; below a matching node its children are tried in
  order, a matching child is descended into, and the search stops at the first matching child unless
  that child has ``continue: true``. A node none of whose children match is itself a result. Each
  result carries its path (``"0"`` the root, ``"0.1.0"`` ...), which keeps groups of different routes
  apart even when they share a receiver.
- ``group_labels`` / ``group_key``: an alert's group is the route, its receiver and the values of the
  route's ``groupBy`` labels (``...`` groups by every label, as in Alertmanager).
- ``silencing``: the first silence whose every matcher matches and whose window holds ``now``.
- ``inhibiting``: the first rule under which a firing source alert (``sourceMatchers``) with the same
  values for the ``equal`` labels mutes the target (``targetMatchers``); an alert never inhibits
  itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from shared.config.alerting import Matcher, Route

__all__ = [
    "ALL_LABELS",
    "InhibitRuleLike",
    "RouteMatch",
    "SilenceLike",
    "group_key",
    "group_labels",
    "inhibiting",
    "matching_routes",
    "silencing",
]

ALL_LABELS: Final = "..."


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route an alert goes to, and where it sits in the tree."""

    path: str
    route: Route

    @property
    def receiver(self) -> str:
        return str(self.route.receiver)


def _matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def matching_routes(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """The routes (with their receivers, inherited settings resolved) ``labels`` goes to."""
    return _descend(root, "0", labels)


def _descend(node: Route, path: str, labels: Mapping[str, str]) -> list[RouteMatch]:
    found: list[RouteMatch] = []
    for index, child in enumerate(node.routes):
        if not _matches(child.matchers, labels):
            continue
        found.extend(_descend(child, f"{path}.{index}", labels))
        if not child.continue_:
            break
    return found or [RouteMatch(path, node)]


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name the alert's group under ``route``."""
    if ALL_LABELS in route.group_by:
        return dict(sorted(labels.items()))
    return {name: labels.get(name, "") for name in route.group_by}


def group_key(match: RouteMatch, labels: Mapping[str, str]) -> str:
    """A stable id for the alert's group under ``match`` (32 hex): route path, receiver, group labels."""
    text = json.dumps([match.path, match.receiver, group_labels(match.route, labels)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SilenceLike(Protocol):
    """A silence from the plan or the silence store."""

    @property
    def matchers(self) -> Sequence[Matcher]: ...

    @property
    def ends_at(self) -> datetime: ...


def silencing[S: SilenceLike](labels: Mapping[str, str], silences: Iterable[S], now: datetime) -> S | None:
    """The first silence muting ``labels`` at ``now``, or None."""
    for silence in silences:
        starts_at: datetime | None = getattr(silence, "starts_at", None)
        if starts_at is not None and now < starts_at:
            continue
        if now < silence.ends_at and silence.matchers and _matches(silence.matchers, labels):
            return silence
    return None


class InhibitRuleLike(Protocol):
    """An inhibition rule (plan ``alerting.inhibitRules``)."""

    @property
    def source_matchers(self) -> Sequence[Matcher]: ...

    @property
    def target_matchers(self) -> Sequence[Matcher]: ...

    @property
    def equal(self) -> Sequence[str]: ...


def inhibiting[R: InhibitRuleLike](
    labels: Mapping[str, str], firing: Iterable[Mapping[str, str]], rules: Iterable[R]
) -> R | None:
    """The first rule under which one of the ``firing`` alerts mutes ``labels``, or None."""
    sources = [source for source in firing if dict(source) != dict(labels)]
    for rule in rules:
        if not _matches(rule.target_matchers, labels):
            continue
        for source in sources:
            if _matches(rule.source_matchers, source) and all(
                source.get(name, "") == labels.get(name, "") for name in rule.equal
            ):
                return rule
    return None

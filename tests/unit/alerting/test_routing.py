"""Alertmanager routing semantics: the tree, continue, grouping, silences and inhibition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.alerting.routing import (
    RouteMatch,
    group_key,
    group_labels,
    inhibiting,
    matching_routes,
    silencing,
)
from shared.config import AlertingConfig, InhibitRule, Silence

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def config(**overrides: Any) -> AlertingConfig:
    raw: dict[str, Any] = {
        "route": {
            "receiver": "email",
            "groupBy": ["alertname", "wave"],
            "routes": [
                {"receiver": "pager", "matchers": ["severity=~critical|high"], "continue": True},
                {
                    "receiver": "teams",
                    "matchers": ['alertname=~"BreakGlass.*"'],
                    "groupBy": ["..."],
                    "routes": [{"receiver": "slack", "matchers": ["wave!=pilot", "wave!="]}],
                },
                {"receiver": "webhook", "matchers": ["alertname!~Poison.*", "source=hr"]},
            ],
        },
        "receivers": [
            {"name": "email", "email": {"to": ["sec@contoso.com"], "senderMailbox": "wg@contoso.com"}},
            {"name": "pager", "pagerduty": {"routingKey": "k" * 32, "url": "http://127.0.0.1:9/pd"}},
            {"name": "teams", "teams": {"webhookUrl": "http://127.0.0.1:9/teams"}},
            {"name": "slack", "slack": {"webhookUrl": "http://127.0.0.1:9/slack"}},
            {"name": "webhook", "webhook": {"url": "http://127.0.0.1:9/hook"}},
        ],
        **overrides,
    }
    return AlertingConfig.model_validate(raw)


def receivers(matches: list[RouteMatch]) -> list[str]:
    return [m.receiver for m in matches]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # nothing below the root matches: the root's receiver
        ({"alertname": "HireTapHeld", "severity": "medium"}, ["email"]),
        # continue: true on the pager route, so the search goes on to the next sibling
        ({"alertname": "BreakGlassTargeted", "severity": "critical", "wave": "pilot"}, ["pager", "teams"]),
        # a nested match wins over its parent
        ({"alertname": "BreakGlassTargeted", "severity": "critical", "wave": "finance"}, ["pager", "slack"]),
        # no continue on teams: the webhook sibling is not tried even though it would match
        ({"alertname": "BreakGlassSignIn", "severity": "low", "source": "hr"}, ["teams"]),
        ({"alertname": "HireTapHeld", "severity": "low", "source": "hr"}, ["webhook"]),
        ({"alertname": "PoisonMessage", "severity": "low", "source": "hr"}, ["email"]),
        # a missing label reads as "": wave!="" does not match, so the teams node itself is the result
        ({"alertname": "BreakGlassSignIn", "severity": "info"}, ["teams"]),
    ],
)
def test_the_route_tree(labels: dict[str, str], expected: list[str]) -> None:
    assert receivers(matching_routes(config().route, labels)) == expected


def test_routes_inherit_grouping_and_keep_their_path() -> None:
    labels = {"alertname": "BreakGlassTargeted", "severity": "critical", "wave": "pilot", "group": "g1"}
    pager, teams = matching_routes(config().route, labels)
    assert (pager.path, teams.path) == ("0.0", "0.1")
    assert group_labels(pager.route, labels) == {"alertname": "BreakGlassTargeted", "wave": "pilot"}
    assert group_labels(teams.route, labels) == dict(sorted(labels.items()))  # groupBy: [...]
    # the same alert in two routes is two groups; a different wave is another group
    assert group_key(pager, labels) != group_key(teams, labels)
    assert group_key(pager, labels) == group_key(pager, {**labels, "group": "g2"})
    assert group_key(pager, labels) != group_key(pager, {**labels, "wave": "finance"})


def test_silences_mute_within_their_window_only() -> None:
    silence = Silence.model_validate(
        {
            "matchers": ["wave=pilot", "alertname=~Reg.*"],
            "endsAt": NOW + timedelta(hours=1),
            "comment": "drive",
        }
    )
    labels = {"alertname": "RegistrationLagging", "wave": "pilot"}
    assert silencing(labels, [silence], NOW) is silence
    assert silencing({**labels, "wave": "finance"}, [silence], NOW) is None
    assert silencing(labels, [silence], NOW + timedelta(hours=2)) is None


def test_a_confirmed_compromise_mutes_lesser_alerts_for_the_same_user_only() -> None:
    rule = InhibitRule.model_validate(
        {
            "sourceMatchers": ["alertname=UserCompromised"],
            "targetMatchers": ["severity=~high|medium"],
            "equal": ["user"],
        }
    )
    source = {"alertname": "UserCompromised", "severity": "critical", "user": "u1"}
    target = {"alertname": "RiskySignIn", "severity": "high", "user": "u1"}
    assert inhibiting(target, [source], [rule]) is rule
    assert inhibiting({**target, "user": "u2"}, [source], [rule]) is None
    assert inhibiting({**target, "severity": "critical"}, [source], [rule]) is None
    # an alert never mutes itself
    assert (
        inhibiting(
            source,
            [source],
            [InhibitRule.model_validate({**rule.model_dump(by_alias=True), "targetMatchers": ["user=u1"]})],
        )
        is None
    )


def test_inhibit_rules_need_matchers() -> None:
    with pytest.raises(ValueError, match=r"sourceMatchers|source_matchers"):
        config(inhibitRules=[{"sourceMatchers": [], "targetMatchers": ["a=b"]}])

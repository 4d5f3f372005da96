"""The receiver sink over real HTTP: what each receiver accepts and refuses, PagerDuty's incidents,
rate limits and their recorded violations, failure injection, the admin API, and WaveGuard's own
``Delivery`` sending to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.ports import free_port, wait_for_port
from local.receiver_sink import RateRule, SinkHandle, start_sink
from shared.alerting.receivers import Delivery
from shared.alerting.router import Notification
from shared.config import Receiver
from shared.errors import PermanentError, RetryableError

pytestmark = pytest.mark.functional
ROOT = Path(__file__).resolve().parents[3]
ROUTING_KEY = "R0ut1ngKeyForSinkTests0000000000"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CARD = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": "hi"}],
            },
        }
    ],
}


def trigger(dedup_key: str | None = "group-1", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {
            "summary": "break-glass targeted",
            "source": "waveguard",
            "severity": "critical",
            **payload,
        },
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def action(name: str, dedup_key: str = "group-1") -> dict[str, Any]:
    return {"routing_key": ROUTING_KEY, "event_action": name, "dedup_key": dedup_key}


@pytest.fixture(scope="module")
def shared_sink() -> Iterator[SinkHandle]:
    with start_sink(port=0) as handle:
        yield handle


@pytest.fixture
def sink(shared_sink: SinkHandle) -> SinkHandle:
    """The module's sink, forgotten clean (rate windows and injected failures included)."""
    shared_sink.clear()
    return shared_sink


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# PagerDuty


def test_trigger_then_resolve_with_one_dedup_key_is_one_resolved_incident(
    sink: SinkHandle, http: httpx.Client
) -> None:
    first = http.post(sink.pagerduty_url, json=trigger())
    assert first.status_code == 202
    assert first.json() == {"status": "success", "message": "Event processed", "dedup_key": "group-1"}
    assert http.post(sink.pagerduty_url, json=trigger()).status_code == 202  # a repeat dedups
    assert http.post(sink.pagerduty_url, json=action("resolve")).status_code == 202
    incidents = http.get(f"{sink.url}/_sink/incidents").json()["value"]
    assert len(incidents) == 1
    incident = incidents[0]
    assert (incident["routingKey"], incident["dedupKey"], incident["status"]) == (
        ROUTING_KEY,
        "group-1",
        "resolved",
    )
    assert incident["eventCounts"] == {"trigger": 2, "acknowledge": 0, "resolve": 1}
    assert incident["eventCount"] == 3
    assert incident["severity"] == "critical"
    assert incident["firstEventAt"] <= incident["lastEventAt"] == incident["resolvedAt"]
    assert http.get(f"{sink.url}/_sink/incidents", params={"status": "triggered"}).json() == {"value": []}


def test_acknowledge_holds_retrigger_after_resolve_opens_a_new_incident(
    sink: SinkHandle, http: httpx.Client
) -> None:
    for body in (trigger(), action("acknowledge"), trigger()):
        assert http.post(sink.pagerduty_url, json=body).status_code == 202
    assert [i["status"] for i in sink.incidents()] == ["acknowledged"]
    for body in (action("resolve"), trigger(), action("resolve", dedup_key="never-triggered")):
        assert http.post(sink.pagerduty_url, json=body).status_code == 202
    assert [(i["number"], i["status"]) for i in sink.incidents()] == [(1, "resolved"), (2, "triggered")]
    assert sink.stats()["pagerduty"] == {
        "incidents": 2,
        "triggered": 1,
        "acknowledged": 0,
        "resolved": 1,
        "ignoredActions": 1,
    }


def test_trigger_without_dedup_key_gets_one(sink: SinkHandle, http: httpx.Client) -> None:
    answer = http.post(sink.pagerduty_url, json=trigger(dedup_key=None)).json()
    assert len(answer["dedup_key"]) == 32
    assert [i["dedupKey"] for i in sink.incidents()] == [answer["dedup_key"]]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {**trigger(), "routing_key": "short"},
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        ({**trigger(), "routing_key": None}, "'routing_key' is missing or blank"),
        ({**trigger(), "event_action": "escalate"}, "'event_action' is invalid"),
        ({**trigger(), "payload": None}, "'payload' is missing"),
        (trigger(summary="x" * 1025), "Length of 'payload.summary' is incorrect"),
        (trigger(summary=" "), "'payload.summary' is missing or blank"),
        (trigger(source=""), "'payload.source' is missing or blank"),
        (trigger(severity="high"), "'payload.severity' is invalid"),
        ({**action("resolve"), "dedup_key": ""}, "'dedup_key' is missing or blank (required to resolve)"),
        ({**action("acknowledge"), "dedup_key": "d" * 256}, "Length of 'dedup_key' is incorrect"),
        ([trigger()], "Event object is not a JSON object"),
    ],
)
def test_invalid_pagerduty_events_are_400_with_the_errors(
    sink: SinkHandle, http: httpx.Client, body: Any, error: str
) -> None:
    answer = http.post(sink.pagerduty_url, json=body)
    assert answer.status_code == 400
    payload = answer.json()
    assert (payload["status"], payload["message"]) == ("invalid event", "Event object is invalid")
    assert any(e.startswith(error) for e in payload["errors"]), payload["errors"]
    [event] = sink.events("pagerduty")
    assert (event["status"], event["outcome"]) == (400, "invalid")
    assert event["errors"] == payload["errors"]
    assert sink.incidents() == []


def test_a_body_that_is_not_json_is_recorded_as_text_and_refused(
    sink: SinkHandle, http: httpx.Client
) -> None:
    answer = http.post(sink.pagerduty_url, content=b"not json", headers={"content-type": "text/plain"})
    assert answer.status_code == 400
    assert sink.events()[0]["body"] == "not json"


# Teams, Slack, webhook


def test_teams_accepts_an_adaptive_card_message_on_any_subpath(sink: SinkHandle, http: httpx.Client) -> None:
    assert http.post(sink.teams_url, json=CARD).status_code == 202
    assert http.post(f"{sink.teams_url}/identity?sig=secret", json=CARD).status_code == 202
    events = sink.events("teams")
    assert [(e["path"], e["status"], e["outcome"]) for e in events] == [
        ("/teams", 202, "accepted"),
        ("/teams/identity", 202, "accepted"),  # the query (a Workflows signature) is not recorded
    ]
    assert events[0]["body"] == CARD


@pytest.mark.parametrize(
    "body",
    [
        {**CARD, "type": "card"},
        {"type": "message", "attachments": []},
        {
            "type": "message",
            "attachments": [{"contentType": "text/plain", "content": {"type": "AdaptiveCard"}}],
        },
        {"type": "message", "attachments": [{**CARD["attachments"][0], "content": {"type": "HeroCard"}}]},  # type: ignore[dict-item]
        {"text": "plain MessageCard text"},
        "a string",
    ],
)
def test_teams_refuses_anything_but_adaptive_cards(sink: SinkHandle, http: httpx.Client, body: Any) -> None:
    answer = http.post(sink.teams_url, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidRequestContent"
    assert sink.events("teams")[0]["outcome"] == "invalid"


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"text": "hello"}, 200, "ok"),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}, 200, "ok"),
        ({"text": ""}, 400, "invalid_payload"),
        ({"blocks": []}, 400, "invalid_payload"),
        ({"text": "x", "blocks": "not a list"}, 400, "invalid_payload"),
        ({"channel": "#ops"}, 400, "invalid_payload"),
    ],
)
def test_slack_needs_text_or_blocks(
    sink: SinkHandle, http: httpx.Client, body: dict[str, Any], status: int, text: str
) -> None:
    answer = http.post(f"{sink.slack_url}/T000/B000/XXX", json=body)
    assert (answer.status_code, answer.text) == (status, text)
    assert sink.events("slack")[0]["path"] == "/slack/T000/B000/XXX"


def test_webhook_records_the_standard_webhooks_headers(sink: SinkHandle, http: httpx.Client) -> None:
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,AAAA",
        "authorization": "Bearer do-not-record",
        "cookie": "a=b",
    }
    answer = http.post(f"{sink.webhook_url}/siem", content=b'{"version": "1"}', headers=headers)
    assert answer.status_code == 200
    [event] = sink.events("webhook")
    assert {k: event["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")} == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,AAAA",
    }
    assert "authorization" not in event["headers"]
    assert "cookie" not in event["headers"]
    assert (event["body"], event["signature"]) == ({"version": "1"}, "unchecked")


def test_a_sink_with_a_secret_verifies_webhook_signatures(http: httpx.Client) -> None:
    from shared.hr.signatures import decode_whsec, sign_standard_webhook

    body, stamp = b'{"status": "firing"}', int(time.time())
    good = sign_standard_webhook(decode_whsec(SECRET), "msg_ok", stamp, body)
    with start_sink(port=0, webhook_secrets=[SECRET]) as signed:
        headers = {"webhook-id": "msg_ok", "webhook-timestamp": str(stamp)}
        ok = http.post(signed.webhook_url, content=body, headers={**headers, "webhook-signature": good})
        forged = http.post(
            signed.webhook_url, content=body, headers={**headers, "webhook-signature": "v1,AAAA"}
        )
        unsigned = http.post(signed.webhook_url, content=body)
        assert (ok.status_code, forged.status_code, unsigned.status_code) == (200, 401, 401)
        assert [(e["signature"], e["outcome"]) for e in signed.events()] == [
            ("valid", "accepted"),
            ("invalid", "unauthorized"),
            ("invalid", "unauthorized"),
        ]


# rate limits


def test_a_second_slack_message_within_a_second_is_a_recorded_violation(
    sink: SinkHandle, http: httpx.Client
) -> None:
    assert http.post(f"{sink.slack_url}/ops", json={"text": "one"}).status_code == 200
    assert http.post(f"{sink.slack_url}/other", json={"text": "another webhook"}).status_code == 200
    second = http.post(f"{sink.slack_url}/ops", json={"text": "two"})
    assert (second.status_code, second.text) == (429, "rate_limited")
    assert second.headers["retry-after"] == "1"
    stats = http.get(f"{sink.url}/_sink/stats").json()
    assert stats["violationCount"] == 1
    [violation] = stats["violations"]
    assert (violation["kind"], violation["target"], violation["limit"], violation["windowSeconds"]) == (
        "slack",
        "/slack/ops",
        1,
        1.0,
    )
    ops = next(t for t in stats["targets"] if t["target"] == "/slack/ops")
    assert (ops["deliveries"], ops["max1s"], ops["max60s"]) == (2, 2, 2)
    assert stats["kinds"]["slack"]["rateLimited"] == 1
    assert sink.events("slack")[-1]["outcome"] == "rateLimited"


def test_teams_allows_four_a_second(sink: SinkHandle, http: httpx.Client) -> None:
    codes = [http.post(sink.teams_url, json=CARD).status_code for _ in range(5)]
    assert codes == [202, 202, 202, 202, 429]
    assert [v["kind"] for v in sink.violations()] == ["teams"]


def test_pagerduty_allows_120_events_a_minute_per_routing_key(sink: SinkHandle, http: httpx.Client) -> None:
    codes = [http.post(sink.pagerduty_url, json=trigger(f"g{i}")).status_code for i in range(121)]
    assert codes == [202] * 120 + [429]
    throttled = http.post(sink.pagerduty_url, json=trigger("g0"))
    assert throttled.json()["status"] == "throttle event"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    other_key = {**trigger("g0"), "routing_key": "A" * 32}
    assert http.post(sink.pagerduty_url, json=other_key).status_code == 202
    stats = sink.stats()
    assert stats["violationCount"] == 2
    assert {v["target"] for v in stats["violations"]} == {ROUTING_KEY}
    target = next(t for t in stats["targets"] if t["target"] == ROUTING_KEY)
    assert (target["deliveries"], target["max60s"]) == (122, 122)
    assert len(sink.incidents()) == 121


def test_limits_can_be_relaxed_or_turned_off(http: httpx.Client) -> None:
    with start_sink(port=0, limits={"slack": RateRule(3, 1.0), "teams": None}) as relaxed:
        slack = [http.post(relaxed.slack_url, json={"text": "x"}).status_code for _ in range(4)]
        teams = [http.post(relaxed.teams_url, json=CARD).status_code for _ in range(6)]
        assert (slack, teams) == ([200, 200, 200, 429], [202] * 6)


# failure injection


def test_fail_mode_answers_the_status_for_the_window_then_recovers(
    sink: SinkHandle, http: httpx.Client
) -> None:
    window = 1.5
    started_at = time.monotonic()
    started = http.post(
        f"{sink.url}/_sink/fail", json={"status": 503, "seconds": window, "kind": "pagerduty"}
    )
    assert started.status_code == 200
    [failure] = started.json()["value"]
    assert (failure["kind"], failure["status"], failure["matched"]) == ("pagerduty", 503, 0)
    assert http.post(sink.pagerduty_url, json=trigger()).status_code == 503
    assert http.post(sink.pagerduty_url, json={"not": "even valid"}).status_code == 503
    assert http.post(sink.teams_url, json=CARD).status_code == 202  # another kind is unaffected
    assert http.get(f"{sink.url}/_sink/fail").json()["value"][0]["matched"] == 2
    assert time.monotonic() - started_at < window, "the checks above took longer than the window"
    time.sleep(max(0.0, started_at + window + 0.1 - time.monotonic()))
    assert http.post(sink.pagerduty_url, json=trigger()).status_code == 202
    assert [e["outcome"] for e in sink.events("pagerduty")] == ["failed", "failed", "accepted"]
    assert sink.stats()["kinds"]["pagerduty"]["failed"] == 2
    assert sink.stats()["failures"] == []
    assert [i["eventCounts"]["trigger"] for i in sink.incidents()] == [1]  # failed events change nothing


def test_fail_mode_for_every_kind_with_retry_after_and_ended_early(
    sink: SinkHandle, http: httpx.Client
) -> None:
    http.post(
        f"{sink.url}/_sink/fail", json={"status": 429, "seconds": 60, "retryAfter": 7}
    ).raise_for_status()
    answers = [
        http.post(sink.slack_url, json={"text": "x"}),
        http.post(sink.webhook_url, json={}),
        http.post(sink.teams_url, json=CARD),
    ]
    assert [(a.status_code, a.headers.get("retry-after")) for a in answers] == [(429, "7")] * 3
    assert sink.violations() == []  # an injected 429 is not the sender's fault
    ended = http.delete(f"{sink.url}/_sink/fail")
    assert ended.json() == {"value": []}
    assert http.post(sink.webhook_url, json={}).status_code == 200


def test_the_handle_injects_failures_too(sink: SinkHandle, http: httpx.Client) -> None:
    sink.fail(502, 30, kind="webhook")
    assert http.post(sink.webhook_url, json={}).status_code == 502
    sink.end_failures("webhook")
    assert http.post(sink.webhook_url, json={}).status_code == 200
    with pytest.raises(ValueError, match="status"):
        sink.fail(404, 30)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": 404, "seconds": 30}, "status"),
        ({"status": "503", "seconds": 30}, "status"),
        ({"seconds": 30}, "status"),
        ({"status": 503}, "seconds"),
        ({"status": 503, "seconds": 0}, "seconds"),
        ({"status": 503, "seconds": 3601}, "seconds"),
        ({"status": 503, "seconds": True}, "seconds"),
        ({"status": 503, "seconds": 30, "kind": "email"}, "kind"),
        ({"status": 503, "seconds": 30, "retryAfter": -1}, "retryAfter"),
        ({"status": 503, "seconds": 30, "duration": 5}, "duration"),
        ([503, 30], "body"),
    ],
)
def test_bad_fail_requests_are_400_naming_the_field(
    sink: SinkHandle, http: httpx.Client, body: Any, field: str
) -> None:
    answer = http.post(f"{sink.url}/_sink/fail", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == field
    assert sink.stats()["failures"] == []


def test_a_fail_body_that_is_not_json_is_400(sink: SinkHandle, http: httpx.Client) -> None:
    answer = http.post(f"{sink.url}/_sink/fail", content=b"{status: 503")
    assert (answer.status_code, answer.json()["error"]["field"]) == (400, "body")


# the admin API


def test_events_filter_by_kind_and_since(sink: SinkHandle, http: httpx.Client) -> None:
    http.post(sink.pagerduty_url, json=trigger())
    http.post(sink.teams_url, json=CARD)
    http.post(sink.webhook_url, json={"n": 1})
    everything = http.get(sink.events_url).json()["value"]
    assert [e["kind"] for e in everything] == ["pagerduty", "teams", "webhook"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs)
    assert set(everything[0]) >= {"seq", "receivedAt", "kind", "path", "status", "headers", "body"}
    teams = http.get(sink.events_url, params={"kind": "teams"}).json()["value"]
    assert [e["seq"] for e in teams] == [seqs[1]]
    later = http.get(sink.events_url, params={"since": seqs[0]}).json()["value"]
    assert [e["seq"] for e in later] == seqs[1:]
    assert http.get(sink.events_url, params={"kind": "webhook", "since": seqs[2]}).json() == {"value": []}
    for params, field in (({"kind": "email"}, "kind"), ({"since": "x"}, "since"), ({"since": "-1"}, "since")):
        answer = http.get(sink.events_url, params=params)
        assert (answer.status_code, answer.json()["error"]["field"]) == (400, field)


def test_delete_events_clears_everything_but_seq_keeps_counting(sink: SinkHandle, http: httpx.Client) -> None:
    http.post(sink.pagerduty_url, json=trigger())
    http.post(sink.slack_url, json={"text": "x"})
    http.post(sink.slack_url, json={"text": "x"})  # a violation
    last = sink.stats()["lastSeq"]
    assert http.delete(sink.events_url).status_code == 204
    stats = http.get(f"{sink.url}/_sink/stats").json()
    assert (stats["recordedEvents"], stats["violationCount"], stats["targets"]) == (0, 0, [])
    assert stats["kinds"]["slack"]["received"] == 0
    assert http.get(f"{sink.url}/_sink/incidents").json() == {"value": []}
    http.post(sink.slack_url, json={"text": "x"})  # the rate window was cleared too
    assert [(e["seq"], e["status"]) for e in sink.events()] == [(last + 1, 200)]


def test_a_body_over_the_limit_is_413_and_recorded(sink: SinkHandle, http: httpx.Client) -> None:
    big = b"x" * (1024 * 1024 + 1)
    answer = http.post(sink.webhook_url, content=big)
    assert answer.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536

    chunked = http.post(sink.pagerduty_url, content=chunks())  # Transfer-Encoding: chunked
    assert chunked.status_code == 413
    events = sink.events()
    assert [(e["kind"], e["status"], e["outcome"], e["body"]) for e in events] == [
        ("webhook", 413, "tooLarge", None),
        ("pagerduty", 413, "tooLarge", None),
    ]
    assert events[0]["bodyBytes"] == len(big)
    # the connection is still usable, and a body at the limit is fine
    assert http.post(sink.webhook_url, content=b"z" * 1024 * 1024).status_code == 200


def test_unknown_paths_and_wrong_methods(sink: SinkHandle, http: httpx.Client) -> None:
    assert http.post(f"{sink.url}/v2/enqueue/extra", json=trigger()).status_code == 404
    assert http.post(f"{sink.url}/teamsx", json=CARD).status_code == 404
    assert http.get(sink.teams_url).status_code == 405
    assert http.post(f"{sink.url}/_sink/stats").status_code == 405
    assert http.get(f"{sink.url}/_sink/nothing").status_code == 404
    assert http.get(f"{sink.url}/_sink").json()["status"] == "ok"
    assert sink.events() == []


# WaveGuard's own delivery code against the sink


def _receiver(kind: str, sink: SinkHandle) -> Receiver:
    configs: dict[str, Any] = {
        "pagerduty": {"routingKey": ROUTING_KEY, "url": sink.pagerduty_url},
        "teams": {"webhookUrl": f"{sink.teams_url}/identity"},
        "slack": {"webhookUrl": f"{sink.slack_url}/identity"},
        "webhook": {"url": f"{sink.webhook_url}/siem", "secret": SECRET},
    }
    return Receiver.model_validate({"name": f"{kind}-rx", kind: configs[kind]})


def _notification(receiver: Receiver, status: str) -> Notification:
    alerts = [
        {
            "key": "k1",
            "status": status,
            "severity": "high",
            "summary": "break-glass added to pilot",
            "labels": {"alertname": "BreakGlassTargeted", "wave": "pilot"},
            "startsAt": "2026-12-05T12:00:00Z",
        }
    ]
    labels = {"alertname": "BreakGlassTargeted", "wave": "pilot"}
    return Notification("g" * 32, receiver, status, labels, alerts)  # type: ignore[arg-type]


async def test_waveguard_deliveries_are_accepted_and_its_errors_follow_the_answers(
    shared_sink: SinkHandle,
) -> None:
    with start_sink(port=0, webhook_secrets=[SECRET]) as sink:
        deliver = Delivery()
        for kind in ("pagerduty", "teams", "slack", "webhook"):
            await deliver(_notification(_receiver(kind, sink), "firing"))
        await deliver(_notification(_receiver("pagerduty", sink), "resolved"))
        assert [(e["kind"], e["outcome"]) for e in sink.events()] == [
            ("pagerduty", "accepted"),
            ("teams", "accepted"),
            ("slack", "accepted"),
            ("webhook", "accepted"),
            ("pagerduty", "accepted"),
        ]
        assert sink.events("webhook")[0]["signature"] == "valid"
        [incident] = sink.incidents()
        assert (incident["dedupKey"], incident["status"], incident["severity"]) == (
            "g" * 32,
            "resolved",
            "error",
        )
        # a second Slack message within the second is throttled: WaveGuard retries it later
        with pytest.raises(RetryableError) as throttled:
            await deliver(_notification(_receiver("slack", sink), "resolved"))
        assert throttled.value.retry_after is not None
        sink.fail(503, 30, kind="teams")
        with pytest.raises(RetryableError):
            await deliver(_notification(_receiver("teams", sink), "resolved"))
        assert sink.stats()["violationCount"] == 1
    # a routing key of the wrong length (the plan refuses one; built here without its checks) is the
    # receiver's misconfiguration: permanent
    from pydantic import SecretStr

    from shared.config.alerting import PagerDutyReceiver

    bad = Receiver.model_construct(
        name="pd",
        pagerduty=PagerDutyReceiver.model_construct(
            routing_key=SecretStr("short"), url=shared_sink.pagerduty_url
        ),
    )
    with pytest.raises(PermanentError):
        await deliver(_notification(bad, "firing"))


# the entry point


def test_python_dash_m_serves_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.receiver_sink", "--port", str(port), "--limit", "slack=off"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, timeout=20)
        url = f"http://127.0.0.1:{port}"
        for _ in range(2):
            assert httpx.post(f"{url}/slack", json={"text": "hello"}, timeout=5).status_code == 200
        assert httpx.get(f"{url}/_sink/stats", timeout=5).json()["rules"]["slack"] is None
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, out
    assert f"Receiver sink listening on {url}" in out
    assert "slack /slack -> 200 accepted 'hello'" in out


def test_bad_flags_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.receiver_sink", "--port", "0", "--limit", "email=1/1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--limit expects" in result.stderr

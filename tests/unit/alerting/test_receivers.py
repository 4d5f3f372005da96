"""Receivers against httpx.MockTransport: PagerDuty Events v2, Teams Adaptive Card, Slack Block Kit,
a Standard Webhooks-signed webhook, and how a receiver's answers turn into retry or refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.alerting.receivers import SUMMARY_LIMIT, Delivery
from shared.alerting.router import Notification
from shared.config import Receiver
from shared.errors import PermanentError, RetryableError
from shared.hr.signatures import StandardWebhooksVerifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def receiver(kind: str) -> Receiver:
    configs: dict[str, Any] = {
        "pagerduty": {"routingKey": "R" * 32, "url": "http://127.0.0.1:9/v2/enqueue"},
        "teams": {"webhookUrl": "http://127.0.0.1:9/teams"},
        "slack": {"webhookUrl": "http://127.0.0.1:9/slack"},
        "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
    }
    return Receiver.model_validate({"name": f"{kind}-rx", kind: configs[kind]})


def note(kind: str, *, status: str = "firing", summary: str = "break-glass added to pilot") -> Notification:
    alerts = [
        {"key": "k1", "status": status, "severity": "high", "summary": summary,
         "labels": {"alertname": "BreakGlassTargeted", "wave": "pilot"}, "startsAt": "2026-12-05T12:00:00Z"},
    ]  # fmt: skip
    return Notification(
        "g" * 32, receiver(kind), status,  # type: ignore[arg-type]
        {"alertname": "BreakGlassTargeted", "wave": "pilot"}, alerts,
    )  # fmt: skip


class Recorder:
    def __init__(self, status: int = 202, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.headers = status, headers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers, json={"status": "success"})

    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


async def test_pagerduty_triggers_and_resolves_one_incident_per_group() -> None:
    recorder = Recorder()
    deliver = Delivery(transport=httpx.MockTransport(recorder))
    await deliver(note("pagerduty", summary="x" * 5000))
    event = recorder.body()
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "g" * 32
    assert event["routing_key"] == "R" * 32
    assert event["payload"]["severity"] == "error"  # high -> error
    assert len(event["payload"]["summary"]) == SUMMARY_LIMIT
    assert event["payload"]["custom_details"]["firing"] == 1
    await deliver(note("pagerduty", status="resolved"))
    resolved = recorder.body()
    assert (resolved["event_action"], resolved["dedup_key"]) == ("resolve", "g" * 32)
    assert "payload" not in resolved


async def test_teams_gets_an_adaptive_card_and_slack_block_kit() -> None:
    recorder = Recorder(status=200)
    deliver = Delivery(transport=httpx.MockTransport(recorder))
    await deliver(note("teams"))
    card = recorder.body()["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert card["content"]["body"][0]["text"] == "[FIRING:1] BreakGlassTargeted (wave=pilot)"
    assert card["content"]["body"][0]["color"] == "Attention"
    await deliver(note("slack", status="resolved"))
    slack = recorder.body()
    assert slack["text"].startswith("[RESOLVED] BreakGlassTargeted")
    assert slack["blocks"][0]["type"] == "header"


async def test_the_webhook_is_signed_with_standard_webhooks() -> None:
    recorder = Recorder(status=204)
    await Delivery(transport=httpx.MockTransport(recorder))(note("webhook"))
    request = recorder.requests[-1]
    headers = {k.lower(): v for k, v in request.headers.items()}
    verified = StandardWebhooksVerifier([SECRET]).verify(headers, request.content, now=datetime.now(UTC))
    assert verified.webhook_id.startswith("msg_")
    assert json.loads(request.content)["groupId"] == "g" * 32


@pytest.mark.parametrize(
    ("status", "error"), [(429, RetryableError), (503, RetryableError), (400, PermanentError)]
)
async def test_answers_become_retry_or_refusal(status: int, error: type[Exception]) -> None:
    recorder = Recorder(status=status, headers={"retry-after": "7"})
    with pytest.raises(error) as caught:
        await Delivery(transport=httpx.MockTransport(recorder))(note("pagerduty"))
    assert "R" * 32 not in str(caught.value)  # the key never shows
    if status == 429:
        assert getattr(caught.value, "retry_after", None) == 7.0


async def test_an_unreachable_receiver_is_retryable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryableError, match="could not be reached"):
        await Delivery(transport=httpx.MockTransport(down))(note("teams"))

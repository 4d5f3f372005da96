"""Helpers for the HR ingress functional tests: a mini-host whose queue triggers are parked, signed requests,
and a look at the real ``hr-events`` queue in Azurite."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from standardwebhooks.webhooks import Webhook

from shared.envelope import Envelope
from shared.names import HR_EVENTS
from tests.app_host import app_host
from tests.events import load_event

HIRE: dict[str, Any] = load_event("employee_hired")


def _parked(connection_string: str, queue_name: str) -> QueueClient:
    # Queue triggers (the hr-events worker) poll a parked copy, so what ingress enqueues on the
    # real hr-events stays there for the test to count.
    return QueueClient.from_connection_string(connection_string, f"parked-{queue_name}")


@contextmanager
def running_app(environ: Mapping[str, str], storage_connection_string: str) -> Iterator[str]:
    """The real function_app in the mini-host; yields the base URL with the /api prefix."""
    host = app_host(environ, storage_connection_string, client_factory=_parked)
    host.start()
    try:
        yield f"{host.base_url}/api"
    finally:
        host.stop()


def hr_events_queue(storage_connection_string: str) -> QueueClient:
    return QueueClient.from_connection_string(storage_connection_string, HR_EVENTS)


def empty_hr_events(storage_connection_string: str) -> None:
    queue = hr_events_queue(storage_connection_string)
    try:
        queue.create_queue()
    except ResourceExistsError:
        queue.clear_messages()


def queued_envelopes(storage_connection_string: str) -> list[Envelope]:
    """Every message now on hr-events (peeked, so they stay), decoded as the worker will."""
    messages = hr_events_queue(storage_connection_string).peek_messages(max_messages=32)
    return [Envelope.from_json(base64.b64decode(m.content)) for m in messages]


def signed_headers(secret: str, body: bytes, *, msg_id: str, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by the official client (a sender we did not write)."""
    moment = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body.decode()),
    }


def body_of(obj: Any) -> bytes:
    return json.dumps(obj).encode()

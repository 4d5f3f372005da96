"""QueueSender against Azurite: base64 on the wire, scheduled sends, queue creation, trace stamping."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import pytest
from azure.storage.queue import ExponentialRetry, QueueClient, QueueServiceClient

from local.azurite import connection_string
from local.ports import free_port
from shared.config import load_settings
from shared.envelope import MAX_QUEUE_MESSAGE_BYTES, Envelope
from shared.errors import InvalidPayloadError, RetryableError
from shared.names import HR_EVENTS, poison
from shared.queues import QueueSender, get_queue_sender, queue_service_client
from shared.telemetry import configure_telemetry, span
from tests.waiting import wait_for

pytestmark = pytest.mark.functional


@pytest.fixture
def sender(storage_connection_string: str) -> QueueSender:
    return QueueSender.from_settings(load_settings({"AzureWebJobsStorage": storage_connection_string}))


@pytest.fixture
def queue_name() -> str:
    # A fresh queue per test: the session's Azurite is shared.
    return f"t-{uuid.uuid4().hex[:12]}"


def _raw_queue(storage_connection_string: str, name: str) -> QueueClient:
    """A client without any decode policy: it sees exactly what is stored."""
    return QueueClient.from_connection_string(storage_connection_string, name)


def test_a_sent_envelope_is_base64_of_our_json_on_the_wire(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    # GIVEN an envelope for a queue that does not exist yet
    envelope = Envelope(type="employee.hired", payload={"employeeId": "E1001", "displayName": "Zoë"})
    # WHEN it is sent
    message_id = sender.send(queue_name, envelope)
    # THEN the queue was created, and the stored text is base64 of the envelope's JSON
    [stored] = _raw_queue(storage_connection_string, queue_name).receive_messages()
    assert stored.id == message_id
    decoded = Envelope.from_json(base64.b64decode(stored.content).decode("utf-8"))
    # (a traceparent is stamped when tracing is configured; the rest is exactly what was sent)
    assert decoded.with_traceparent(None) == envelope


def test_a_message_keeps_its_time_to_live_and_a_raw_text_is_stored_as_given(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    # GIVEN an envelope with a one-hour time to live, and a poison body put back as it was
    envelope = Envelope(type="employee.hired", payload={"note": "ünïcode ✓ <xml> & 'quotes'"})
    first = sender.send(queue_name, envelope, ttl=timedelta(hours=1))
    second = sender.send_raw(queue_name, '{"not": "an envelope"} ✓')
    # THEN the service stored each under the id the send returned, with its own expiry
    stored = {
        m.id: m for m in _raw_queue(storage_connection_string, queue_name).receive_messages(max_messages=5)
    }
    assert set(stored) == {first, second}
    lifetime = stored[first].expires_on - stored[first].inserted_on
    assert timedelta(minutes=59) <= lifetime <= timedelta(minutes=61)
    assert stored[second].expires_on.year >= 9999  # never expires
    assert base64.b64decode(stored[second].content).decode("utf-8") == '{"not": "an envelope"} ✓'
    decoded = Envelope.from_json(base64.b64decode(stored[first].content).decode("utf-8"))
    assert decoded.payload == envelope.payload


def test_a_scheduled_message_stays_invisible_until_its_delay(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    raw = _raw_queue(storage_connection_string, queue_name)
    sender.send(
        queue_name, Envelope(type="hr.lookup-retry", payload={"attempt": 2}), delay=timedelta(seconds=2)
    )
    assert raw.peek_messages() == []
    wait_for("the scheduled message to become visible", raw.peek_messages, timeout=10)
    [visible] = raw.receive_messages()
    assert Envelope.from_json(base64.b64decode(visible.content)).payload == {"attempt": 2}


def test_the_current_trace_is_stamped_on_envelopes_without_one(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    configure_telemetry(load_settings({"WAVEGUARD_TELEMETRY": "off"}))
    with span("http ingress") as ingress:
        sender.send(queue_name, Envelope(type="employee.hired", payload={}))
    [stored] = _raw_queue(storage_connection_string, queue_name).receive_messages()
    traceparent = Envelope.from_json(base64.b64decode(stored.content)).traceparent
    assert traceparent is not None
    assert traceparent.split("-")[1] == f"{ingress.get_span_context().trace_id:032x}"


def test_an_existing_traceparent_is_kept(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    original = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sender.send(queue_name, Envelope(type="x.y", payload={}, traceparent=original))
    [stored] = _raw_queue(storage_connection_string, queue_name).receive_messages()
    assert Envelope.from_json(base64.b64decode(stored.content)).traceparent == original


def test_oversized_messages_are_refused_before_sending(
    sender: QueueSender, queue_name: str, storage_connection_string: str
) -> None:
    sender.ensure_queues([queue_name])
    big = Envelope(type="x.y", payload={"blob": "a" * MAX_QUEUE_MESSAGE_BYTES})
    with pytest.raises(InvalidPayloadError, match="at most 65536 bytes"):
        sender.send(queue_name, big)
    assert _raw_queue(storage_connection_string, queue_name).peek_messages() == []


def test_ensure_queues_is_idempotent(sender: QueueSender, storage_connection_string: str) -> None:
    names = [f"t-{uuid.uuid4().hex[:8]}", poison(f"t-{uuid.uuid4().hex[:8]}")]
    sender.ensure_queues(names)
    sender.ensure_queues(names)
    service = QueueServiceClient.from_connection_string(storage_connection_string)
    existing = {q.name for q in service.list_queues()}
    assert set(names) <= existing


def test_one_sender_per_process_and_storage_account(storage_connection_string: str) -> None:
    settings = load_settings({"AzureWebJobsStorage": storage_connection_string})
    assert get_queue_sender(settings) is get_queue_sender(settings)


def test_unreachable_storage_is_a_retryable_error() -> None:
    # GIVEN storage on a port nobody listens on, and no SDK retries to keep the test short
    port = free_port()
    dead = connection_string(blob_port=port, queue_port=port, table_port=port)
    sender = QueueSender(
        QueueServiceClient.from_connection_string(dead, retry_policy=ExponentialRetry(retry_total=0))
    )
    # WHEN sending THEN the failure is transient, for the caller to retry
    with pytest.raises(RetryableError, match=f"send to {HR_EVENTS}"):
        sender.send(HR_EVENTS, Envelope(type="x.y", payload={}))


def test_a_probe_client_reaches_the_queue_service(storage_connection_string: str) -> None:
    storage = load_settings({"AzureWebJobsStorage": storage_connection_string}).storage
    client = queue_service_client(storage, timeout=2)
    assert client.get_service_properties() is not None

"""Send and schedule envelopes on Azure Storage queues, base64-encoded as the Functions host expects."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry.trace import SpanKind

from shared.config.settings import Settings, StorageSettings
from shared.envelope import Envelope
from shared.errors import BusyError, InvalidPayloadError, status_code_of, storage_error
from shared.offload import Offload, to_thread
from shared.telemetry import current_traceparent, span

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient, QueueServiceClient

__all__ = [
    "MAX_DELAY",
    "AsyncQueueSender",
    "MemoryQueues",
    "QueueSender",
    "Sender",
    "defer",
    "get_queue_sender",
    "queue_service_client",
    "reset_queue_senders",
    "validate_queue_name",
]

# Azure caps a message's initial visibility timeout at 7 days.
MAX_DELAY: Final = timedelta(days=7)
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
# -1: never expire. Queued work must not vanish silently after the service's 7-day default.
_NEVER_EXPIRE: Final = -1


def validate_queue_name(name: str) -> str:
    """``name`` if Azure accepts it as a queue name.

    Raises:
        InvalidPayloadError: not 3-63 lowercase letters, digits and single dashes.
    """
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise InvalidPayloadError.for_field(
            "queue_name", f"{name!r} is not a queue name (3-63 lowercase letters, digits, single dashes)"
        )
    return name


class QueueSender:
    """Sends envelopes; one per process, with a cached client per queue (thread-safe)."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueSender:
        """A sender for the storage account in ``settings`` (connection string or managed identity).

        Raises:
            ConfigError: storage is not configured.
        """
        from shared.config.identity import storage_credential

        storage = settings.storage.require()
        credential = None if storage.connection_string else storage_credential(settings)
        return cls(queue_service_client(storage, credential=credential))

    def send(
        self,
        queue_name: str,
        envelope: Envelope,
        *,
        delay: timedelta | float | None = None,
        ttl: timedelta | float | None = None,
    ) -> str:
        """Enqueue ``envelope`` (invisible for ``delay``); returns the storage message id.

        The current trace's ``traceparent`` is stamped on envelopes that carry none. The queue
        is created if it does not exist yet. ``ttl`` defaults to never expiring.

        Raises:
            InvalidPayloadError: bad queue name, a message over 64 KiB, a delay over 7 days, or
                a ttl not longer than the delay.
            RetryableError: storage is unreachable, throttling or failing.
            PermanentError: storage refused the request (e.g. not authorised).
        """
        validate_queue_name(queue_name)
        visibility = _delay_seconds(delay)
        time_to_live = _ttl_seconds(ttl, visibility)
        attributes = {"messaging.system": "azure_queue", "messaging.destination.name": queue_name}
        with span(f"send {queue_name}", kind=SpanKind.PRODUCER, **attributes) as current:
            if envelope.traceparent is None:
                envelope = envelope.with_traceparent(current_traceparent())
            text = envelope.to_queue_text()
            current.set_attribute("messaging.message.id", envelope.id)
            return self._send_text(queue_name, text, visibility=visibility, time_to_live=time_to_live)

    def send_raw(self, queue_name: str, text: str) -> str:
        """Enqueue ``text`` exactly as it is (an archived poison body put back); returns the message id.

        Raises:
            InvalidPayloadError: bad queue name.
            RetryableError / PermanentError: as for ``send``.
        """
        validate_queue_name(queue_name)
        return self._send_text(queue_name, text, visibility=None, time_to_live=_NEVER_EXPIRE)

    def ensure_queues(self, names: Iterable[str]) -> None:
        """Create each queue if missing (idempotent); call at start-up.

        Raises:
            InvalidPayloadError: a name is not a valid queue name.
            RetryableError: storage is unreachable or failing.
            PermanentError: storage refused the request.
        """
        for name in names:
            self._create(validate_queue_name(name))

    def _send_text(self, queue_name: str, text: str, *, visibility: int | None, time_to_live: int) -> str:
        from azure.core.exceptions import AzureError

        from shared.queue_post import post_message

        client = self._client(queue_name)
        try:
            try:
                return post_message(client, text, visibility_timeout=visibility, time_to_live=time_to_live)
            except AzureError as exc:
                code = getattr(exc, "error_code", None)
                if status_code_of(exc) != 404 or str(getattr(code, "value", code)) != "QueueNotFound":
                    raise
                # First message to a queue nobody created yet: create it and send again.
                self._create(queue_name)
                return post_message(client, text, visibility_timeout=visibility, time_to_live=time_to_live)
        except AzureError as exc:
            raise storage_error(exc, operation=f"send to {queue_name}") from exc

    def _create(self, queue_name: str) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            self._client(queue_name).create_queue()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise storage_error(exc, operation=f"create queue {queue_name}") from exc

    def _client(self, queue_name: str) -> QueueClient:
        from azure.storage.queue import TextBase64EncodePolicy

        with self._lock:
            client = self._clients.get(queue_name)
            if client is None:
                client = self._service.get_queue_client(
                    queue_name, message_encode_policy=TextBase64EncodePolicy()
                )
                self._clients[queue_name] = client
            return client


class Sender(Protocol):
    """What every producer of queue messages depends on (``AsyncQueueSender``; fakes in unit tests)."""

    async def send(
        self,
        queue_name: str,
        envelope: Envelope,
        *,
        delay: timedelta | float | None = None,
        ttl: timedelta | float | None = None,
    ) -> str:
        """Enqueue ``envelope`` (invisible for ``delay``); returns the storage message id.

        Raises:
            InvalidPayloadError: bad queue name, too large, or a bad delay/ttl.
            RetryableError: storage is unreachable, throttling or failing.
        """
        ...

    async def send_raw(self, queue_name: str, text: str) -> str:
        """Enqueue ``text`` exactly as it is; returns the storage message id."""
        ...


class AsyncQueueSender:
    """``QueueSender`` for code on the event loop: each send runs off the loop (``offload``)."""

    def __init__(self, sender: QueueSender, offload: Offload = to_thread) -> None:
        self.sync = sender
        self._offload = offload

    async def send(
        self,
        queue_name: str,
        envelope: Envelope,
        *,
        delay: timedelta | float | None = None,
        ttl: timedelta | float | None = None,
    ) -> str:
        return await self._offload(self.sync.send, queue_name, envelope, delay=delay, ttl=ttl)

    async def send_raw(self, queue_name: str, text: str) -> str:
        return await self._offload(self.sync.send_raw, queue_name, text)


class MemoryQueues:
    """An in-memory ``Sender`` (unit tests): everything sent, in order, per queue; nothing is delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope, float | None]] = []
        self.raw: list[tuple[str, str]] = []

    async def send(
        self,
        queue_name: str,
        envelope: Envelope,
        *,
        delay: timedelta | float | None = None,
        ttl: timedelta | float | None = None,
    ) -> str:
        validate_queue_name(queue_name)
        self.sent.append((queue_name, envelope, _seconds(delay) if delay is not None else None))
        return f"mem-{len(self.sent) + len(self.raw)}"

    async def send_raw(self, queue_name: str, text: str) -> str:
        validate_queue_name(queue_name)
        self.raw.append((queue_name, text))
        return f"mem-{len(self.sent) + len(self.raw)}"

    def on(self, queue_name: str) -> list[Envelope]:
        """The envelopes sent to ``queue_name``, oldest first."""
        return [envelope for name, envelope, _ in self.sent if name == queue_name]


async def defer(sender: Sender, queue_name: str, envelope: Envelope, busy: BusyError) -> float:
    """Send ``envelope`` again on ``queue_name``, invisible until ``busy.retry_after`` (1 s .. 7 days);
    returns the delay. The caller then settles its own delivery: waiting for another worker's claim
    costs no dequeue count. Dying between the two leaves two copies, which the claim makes harmless.

    Raises:
        RetryableError: storage failed (the delivery is retried the ordinary way).
    """
    delay = max(1.0, min(float(busy.retry_after or 30.0), MAX_DELAY.total_seconds()))
    await sender.send(queue_name, envelope, delay=delay)
    return delay


def queue_service_client(
    storage: StorageSettings, *, timeout: float | None = None, credential: TokenCredential | None = None
) -> QueueServiceClient:
    """A QueueServiceClient for ``storage``: its connection string, or its queue URI plus a credential.

    With ``timeout`` the client is a probe: no retries, each socket operation limited to it.
    Without a ``credential``, identity-based storage uses ``DefaultAzureCredential``.

    Raises:
        ConfigError: storage is not configured.
    """
    from azure.storage.queue import ExponentialRetry, QueueServiceClient

    from shared.storage_transport import pooled_transport

    storage.require()
    options: dict[str, Any]
    if timeout is not None:
        options = {
            "retry_total": 0,
            "transport": pooled_transport(connection_timeout=timeout, read_timeout=timeout),
        }
    else:
        # The SDK default (15 s, 18 s, 24 s backoff) would hold an HTTP ingress far beyond Graph's
        # 3 s; retry briefly, then the caller's RetryableError lets the message be retried later.
        retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1)
        options = {
            "retry_policy": retry,
            "transport": pooled_transport(connection_timeout=5, read_timeout=15),
        }
    if storage.connection_string:
        return QueueServiceClient.from_connection_string(storage.connection_string, **options)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=storage.client_id)
    assert storage.queue_service_uri is not None  # require() checked it
    return QueueServiceClient(account_url=storage.queue_service_uri, credential=credential, **options)


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _delay_seconds(delay: timedelta | float | None) -> int | None:
    if delay is None:
        return None
    seconds = _seconds(delay)
    if math.isnan(seconds):
        raise InvalidPayloadError.for_field("delay", "must be a number of seconds")
    if seconds > MAX_DELAY.total_seconds():
        raise InvalidPayloadError.for_field(
            "delay", f"{seconds:.0f} s exceeds Azure's 7-day maximum; schedule a nearer check-in and re-queue"
        )
    # A moment already past means "now"; Azure counts whole seconds, so round up, never early.
    whole = math.ceil(seconds) if seconds > 0 else 0
    return whole or None


def _ttl_seconds(ttl: timedelta | float | None, visibility: int | None) -> int:
    if ttl is None:
        return _NEVER_EXPIRE
    seconds = math.ceil(_seconds(ttl))
    if seconds <= 0 or seconds <= (visibility or 0):
        raise InvalidPayloadError.for_field("ttl", "must be positive and longer than the delay")
    return seconds


_senders: dict[tuple[str | None, str | None], QueueSender] = {}
_senders_lock = threading.Lock()


def get_queue_sender(settings: Settings) -> QueueSender:
    """The process-wide sender for the storage account in ``settings``.

    Raises:
        ConfigError: storage is not configured.
    """
    key = (settings.storage.connection_string, settings.storage.queue_service_uri)
    with _senders_lock:
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = QueueSender.from_settings(settings)
        return sender


def reset_queue_senders() -> None:
    """Forget cached senders (tests that switch storage accounts)."""
    with _senders_lock:
        _senders.clear()

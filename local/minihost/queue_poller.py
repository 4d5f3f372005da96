"""Queue triggers with the Functions host's semantics (Azure WebJobs QueueListener / QueueProcessor).

- Receive up to `batchSize` messages, each leased for 10 minutes; the lease is renewed at half-time
  while the function runs, so a slow invocation never sees its message delivered twice.
- Fetch the next batch as soon as no more than `newBatchThreshold` invocations are in flight, so
  up to batchSize + newBatchThreshold run at once (sync ones on a thread pool, async ones on the
  shared event loop).
- Success deletes the message. Failure makes it visible again after `visibilityTimeout`, except
  when its dequeue count has reached `maxDequeueCount`: then it is copied unchanged to
  `<queue>-poison` and deleted. A message already dequeued more often than that goes to poison
  without an invocation. Nothing is dropped.
- Idle back-off: 100 ms, doubling up to `maxPollingInterval`; back to 100 ms when a message arrives.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.storage.queue import QueueClient, QueueMessage

from local.minihost.clock import HostClock, SystemClock
from local.minihost.invoker import Invoker, new_invocation_id
from local.minihost.loader import FunctionSpec, QueueTrigger
from local.minihost.logs import fields, get_logger
from local.minihost.settings import QueueSettings

MIN_POLLING_INTERVAL = 0.1
DEFAULT_LEASE_SECONDS = 600.0  # the Functions host's receive visibility timeout
log = get_logger("queue")

ClientFactory = Callable[[str, str], QueueClient]


def default_client_factory(connection_string: str, queue_name: str) -> QueueClient:
    return QueueClient.from_connection_string(connection_string, queue_name)


@dataclass
class _Lease:
    message: QueueMessage
    pop_receipt: str
    renewed_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    settled: bool = False


class QueuePoller:
    """Polls one queue for one function on a background thread."""

    def __init__(
        self,
        spec: FunctionSpec,
        settings: QueueSettings,
        invoker: Invoker,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        client_factory: ClientFactory = default_client_factory,
        clock: HostClock | None = None,
    ) -> None:
        if not isinstance(spec.trigger, QueueTrigger):
            raise TypeError(f"function {spec.name!r} is not a queue trigger")
        self.spec = spec
        self.trigger: QueueTrigger = spec.trigger
        self.settings = settings
        self.poison_queue_name = f"{self.trigger.queue_name}-poison"
        self._invoker = invoker
        self._clock: HostClock = clock or SystemClock()
        self._lease_seconds = max(1.0, lease_seconds)
        self._queue = client_factory(self.trigger.connection_string, self.trigger.queue_name)
        self._poison = client_factory(self.trigger.connection_string, self.poison_queue_name)
        workers = settings.batch_size + settings.new_batch_threshold
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"queue-{spec.name}")
        self._leases: dict[str, _Lease] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}", daemon=True)
        self._queues_ready = False

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop polling; running invocations go on."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the poll thread and running invocations; True when all finished."""
        deadline = time.monotonic() + timeout
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._changed:
            drained = self._changed.wait_for(lambda: not self._leases, max(0.0, deadline - time.monotonic()))
        if not drained:
            log.warning(
                "%d invocations of %s still running after %.1f s; their messages return when the lease ends",
                len(self._leases),
                self.spec.name,
                timeout,
                extra=fields(self.spec.name),
            )
        self._executor.shutdown(wait=False, cancel_futures=True)
        return drained

    def _run(self) -> None:
        delay = MIN_POLLING_INTERVAL
        while not self._stop.is_set():
            self._renew_leases()
            with self._changed:
                # Checked under the lock so a completion (or stop) cannot slip in before the wait.
                busy = len(self._leases) > self.settings.new_batch_threshold
                if busy and not self._stop.is_set():
                    self._changed.wait(self._lease_seconds / 4)
            if busy:
                continue
            batch = self._receive()
            if batch and self._stop.is_set():
                self._release(batch)
                return
            if batch:
                delay = MIN_POLLING_INTERVAL
                for message in batch:
                    self._dispatch(message)
                continue
            self._clock.sleep(min(delay, self._lease_seconds / 4), self._stop)
            delay = min(delay * 2, self.settings.max_polling_interval)

    def _receive(self) -> list[QueueMessage]:
        try:
            self._ensure_queues()
            pages = self._queue.receive_messages(
                messages_per_page=self.settings.batch_size, visibility_timeout=int(self._lease_seconds)
            ).by_page()
            return list(next(pages, []))
        except AzureError as exc:
            self._queues_ready = False  # the queue may have been deleted: check (and create) it again
            log.warning(
                "polling queue %s failed: %s",
                self.trigger.queue_name,
                _short(exc),
                extra=fields(self.spec.name),
            )
            return []

    def _release(self, batch: list[QueueMessage]) -> None:
        """Make messages received during shutdown visible again at once instead of after the lease."""
        for message in batch:
            with contextlib.suppress(AzureError):
                self._queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)

    def _ensure_queues(self) -> None:
        if self._queues_ready:
            return
        for client in (self._queue, self._poison):
            with contextlib.suppress(ResourceExistsError):  # someone created it first: fine
                client.create_queue()
        self._queues_ready = True

    def _dispatch(self, message: QueueMessage) -> None:
        lease = _Lease(message, str(message.pop_receipt), self._clock.monotonic())
        with self._changed:
            self._leases[str(message.id)] = lease
        self._executor.submit(self._process, lease)

    def _process(self, lease: _Lease) -> None:
        message = lease.message
        invocation_id = new_invocation_id()
        extra = fields(self.spec.name, invocation_id)
        try:
            if int(message.dequeue_count or 0) > self.settings.max_dequeue_count:
                log.warning(
                    "message %s was dequeued %s times (max %d); moving it to %s without invoking",
                    message.id,
                    message.dequeue_count,
                    self.settings.max_dequeue_count,
                    self.poison_queue_name,
                    extra=extra,
                )
                self._settle(lease, succeeded=False, extra=extra)
                return
            succeeded = self._invoke(lease, invocation_id, extra)
            self._settle(lease, succeeded=succeeded, extra=extra)
        except AzureError as exc:
            log.error("settling message %s failed: %s", message.id, _short(exc), extra=extra)
        finally:
            with self._changed:
                # A failed message can be received again (visibilityTimeout 0) and its new lease stored
                # under the same id before this runs: remove only our own lease.
                if self._leases.get(str(message.id)) is lease:
                    del self._leases[str(message.id)]
                self._changed.notify_all()

    def _invoke(self, lease: _Lease, invocation_id: str, extra: dict[str, str]) -> bool:
        message = lease.message
        log.info(
            "Executing %s (queue %s, message %s, dequeue count %s)",
            self.spec.name,
            self.trigger.queue_name,
            message.id,
            message.dequeue_count,
            extra=extra,
        )
        return self._invoker.invoke_logged(
            self.spec,
            lambda: self._trigger_value(lease, self._decode(message.content)),
            invocation_id,
            logger=log,
            extra=extra,
        )

    def _decode(self, content: Any) -> bytes:
        text = content if isinstance(content, str) else bytes(content).decode("utf-8")
        if self.settings.message_encoding == "none":
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(
                f"message is not valid base64 (host.json messageEncoding is base64): {exc}"
            ) from exc

    @staticmethod
    def _trigger_value(lease: _Lease, body: bytes) -> FuncQueueMessage:
        # The public func.QueueMessage takes id/body/pop_receipt only; the worker's converter builds
        # azure.functions.queue.QueueMessage with the metadata, and so do we.
        message = lease.message
        return FuncQueueMessage(  # type: ignore[no-untyped-call]  # azure-functions is untyped here
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=lease.pop_receipt,
        )

    def _settle(self, lease: _Lease, *, succeeded: bool, extra: dict[str, str]) -> None:
        message = lease.message
        with lease.lock:
            lease.settled = True
            if succeeded:
                self._queue.delete_message(message.id, lease.pop_receipt)
            elif int(message.dequeue_count or 0) >= self.settings.max_dequeue_count:
                # Logged first: once the message shows up in poison, its warning is already there.
                log.warning(
                    "message %s reached maxDequeueCount %d; moving it to %s",
                    message.id,
                    self.settings.max_dequeue_count,
                    self.poison_queue_name,
                    extra=extra,
                )
                self._poison.send_message(message.content)
                self._queue.delete_message(message.id, lease.pop_receipt)
            else:
                self._queue.update_message(
                    message.id, lease.pop_receipt, visibility_timeout=int(self.settings.visibility_timeout)
                )

    def _renew_leases(self) -> None:
        now = self._clock.monotonic()
        with self._changed:
            due = [
                lease for lease in self._leases.values() if now - lease.renewed_at >= self._lease_seconds / 2
            ]
        for lease in due:
            with lease.lock:
                if lease.settled:
                    continue
                try:
                    receipt = self._queue.update_message(
                        lease.message.id, lease.pop_receipt, visibility_timeout=int(self._lease_seconds)
                    )
                except AzureError as exc:
                    log.warning(
                        "renewing the lease of message %s failed: %s",
                        lease.message.id,
                        _short(exc),
                        extra=fields(self.spec.name),
                    )
                    continue
                lease.pop_receipt = str(receipt.pop_receipt)
                lease.renewed_at = now


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

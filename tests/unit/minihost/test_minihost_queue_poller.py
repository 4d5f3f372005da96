"""The queue poller over an in-memory queue: idle back-off, batch threshold, settling, poison."""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.storage.queue import QueueMessage

from local.minihost.invoker import EventLoopThread, Invoker
from local.minihost.loader import FunctionSpec, read_functions
from local.minihost.queue_poller import QueuePoller
from local.minihost.settings import QueueSettings
from tests.unit.minihost.manual_clock import ManualClock
from tests.waiting import holds_for, wait_for

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@dataclass
class FakeQueue:
    """Just enough of azure.storage.queue.QueueClient, with Azure's visibility and dequeue-count rules."""

    name: str
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    receive_times: list[float] = field(default_factory=list)
    delivering_polls: list[int] = field(default_factory=list)  # indexes into receive_times
    after_update: Callable[[str, int], None] | None = None  # called outside the lock, to order threads
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=itertools.count)
    monotonic: Callable[[], float] = time.monotonic  # the poller's clock: visibility follows it

    def create_queue(self) -> None:
        return None

    def send_message(self, content: str) -> None:
        with self.lock:
            ident = f"m{next(self.ids)}"
            self.messages[ident] = {"content": content, "dequeue": 0, "visible_at": 0.0, "receipt": None}

    def receive_messages(self, *, messages_per_page: int, visibility_timeout: int) -> FakeQueue._Paged:
        with self.lock:
            now = self.monotonic()
            self.receive_times.append(now)
            batch: list[QueueMessage] = []
            for ident, message in self.messages.items():
                if message["visible_at"] <= now and len(batch) < messages_per_page:
                    message["dequeue"] += 1
                    message["visible_at"] = now + visibility_timeout
                    message["receipt"] = f"{ident}-{message['dequeue']}"
                    batch.append(self._as_sdk(ident, message))
            if batch:
                self.delivering_polls.append(len(self.receive_times) - 1)
        return FakeQueue._Paged(batch)

    def delete_message(self, ident: str, pop_receipt: str) -> None:
        with self.lock:
            assert self.messages[ident]["receipt"] == pop_receipt, "stale pop receipt"
            del self.messages[ident]

    def update_message(self, ident: str, pop_receipt: str, *, visibility_timeout: int) -> QueueMessage:
        with self.lock:
            message = self.messages[ident]
            assert message["receipt"] == pop_receipt, "stale pop receipt"
            message["visible_at"] = self.monotonic() + visibility_timeout
            message["receipt"] = f"{pop_receipt}+"
            updated = self._as_sdk(ident, message)
        if self.after_update is not None:
            self.after_update(ident, visibility_timeout)
        return updated

    @staticmethod
    def _as_sdk(ident: str, message: dict[str, Any]) -> QueueMessage:
        now = datetime.now(UTC)
        return QueueMessage(
            content=message["content"],
            id=ident,
            dequeue_count=message["dequeue"],
            pop_receipt=message["receipt"],
            inserted_on=now,
            expires_on=now + timedelta(days=7),
            next_visible_on=now,
        )

    @dataclass
    class _Paged:
        batch: list[QueueMessage]

        def by_page(self) -> Iterator[list[QueueMessage]]:
            return iter([self.batch])


def queue_spec(handler: Callable[[func.QueueMessage], None]) -> FunctionSpec:
    app = func.FunctionApp()
    app.queue_trigger(arg_name="msg", queue_name="work-items", connection="AzureWebJobsStorage")(handler)
    (spec,) = read_functions(app, app_ref="t:app", directory="/app", environ={"AzureWebJobsStorage": "fake"})
    return spec


@dataclass
class Harness:
    queue: FakeQueue
    poison: FakeQueue
    poller: QueuePoller


@pytest.fixture
def make_poller() -> Iterator[Callable[..., Harness]]:
    loop = EventLoopThread()
    loop.start()
    pollers: list[QueuePoller] = []

    def make(
        handler: Callable[[func.QueueMessage], None],
        settings: QueueSettings,
        *,
        clock: ManualClock | None = None,
    ) -> Harness:
        monotonic = clock.monotonic if clock is not None else time.monotonic
        queues = {name: FakeQueue(name, monotonic=monotonic) for name in ("work-items", "work-items-poison")}
        poller = QueuePoller(
            queue_spec(handler),
            settings,
            Invoker(loop),
            lease_seconds=30,
            client_factory=lambda _connection, name: queues[name],  # type: ignore[arg-type,return-value]
            clock=clock,
        )
        pollers.append(poller)
        return Harness(queues["work-items"], queues["work-items-poison"], poller)

    yield make
    for poller in pollers:
        poller.request_stop()
        poller.wait(5)
    loop.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    wait_for("the poller to get there", condition, timeout=timeout, interval=0.01)


def test_an_idle_queue_is_polled_less_and_less_often_up_to_max_polling_interval(
    make_poller: Callable[..., Harness],
) -> None:
    # GIVEN an empty queue, maxPollingInterval 0.4 s and a manual clock
    clock = ManualClock(T0)
    harness = make_poller(lambda msg: None, QueueSettings(max_polling_interval=0.4), clock=clock)
    # WHEN the poller idles for a while
    harness.poller.start()
    wait_until(lambda: len(harness.queue.receive_times) >= 6)
    harness.poller.request_stop()
    # THEN the wait between polls doubles from 0.1 s up to 0.4 s and stays there (not 0.8, 1.6, 3.2 s)
    assert clock.sleeps[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    times = harness.queue.receive_times[:6]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.1, 0.2, 0.4, 0.4, 0.4]


def test_a_message_resets_polling_to_fast(make_poller: Callable[..., Harness]) -> None:
    # GIVEN a poller that has backed off to 0.8 s (waits 0.1, 0.2, 0.4, then 0.8 s)
    clock = ManualClock(T0)
    handled = threading.Event()
    harness = make_poller(lambda msg: handled.set(), QueueSettings(max_polling_interval=0.8), clock=clock)
    harness.poller.start()
    wait_until(lambda: len(harness.queue.receive_times) >= 5)
    # WHEN a message arrives and is handled
    harness.queue.send_message(base64.b64encode(b"hi").decode())
    assert handled.wait(15)
    wait_until(lambda: len(harness.queue.receive_times) >= harness.queue.delivering_polls[0] + 4)
    harness.poller.request_stop()
    times = harness.queue.receive_times
    delivered = harness.queue.delivering_polls[0]
    # THEN it had backed off to 0.8 s, and the next polls come at once, then after 0.1, 0.2, 0.4 s
    assert round(times[delivered] - times[delivered - 1], 6) == 0.8
    assert clock.sleeps[delivered - 1 : delivered + 3] == [0.8, 0.1, 0.2, 0.4]
    assert times[delivered + 1] == times[delivered]


def test_the_next_batch_waits_until_no_more_than_new_batch_threshold_are_in_flight(
    make_poller: Callable[..., Harness],
) -> None:
    # GIVEN batchSize 4, newBatchThreshold 1, ten messages and a function that blocks until released
    release = threading.Semaphore(0)
    running: list[int] = []
    peak: list[int] = [0]
    lock = threading.Lock()

    def handler(msg: func.QueueMessage) -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        release.acquire()
        with lock:
            running.pop()

    harness = make_poller(
        handler, QueueSettings(batch_size=4, new_batch_threshold=1, max_polling_interval=0.2)
    )
    for n in range(10):
        harness.queue.send_message(base64.b64encode(f"{n}".encode()).decode())
    harness.poller.start()

    # WHEN the first batch is running THEN nothing more is fetched while 4 (> 1) are in flight
    wait_until(lambda: len(running) == 4)
    holds_for("four running, none fetched", lambda: len(running) == 4, seconds=0.3)
    # WHEN three finish THEN one is left (<= threshold) and the next batch of four starts
    for _ in range(3):
        release.release()
    wait_until(lambda: len(running) == 5)
    for _ in range(20):
        release.release()
    wait_until(lambda: not harness.queue.messages)
    # THEN never more than batchSize + newBatchThreshold ran at once
    assert peak[0] == 5


def test_failures_return_the_message_and_the_last_allowed_failure_poisons_it(
    make_poller: Callable[..., Harness],
) -> None:
    # GIVEN maxDequeueCount 3 and no visibility delay after a failure
    attempts: list[int] = []

    def handler(msg: func.QueueMessage) -> None:
        attempts.append(msg.dequeue_count or 0)
        raise RuntimeError("always")

    harness = make_poller(handler, QueueSettings(max_dequeue_count=3, max_polling_interval=0.2))
    harness.queue.send_message("Ym9keQ==")
    harness.poller.start()
    # WHEN it fails three times THEN it is poisoned with the same content and removed from the queue
    wait_until(lambda: bool(harness.poison.messages))
    assert attempts == [1, 2, 3]
    assert [m["content"] for m in harness.poison.messages.values()] == ["Ym9keQ=="]
    wait_until(lambda: not harness.queue.messages)


def test_a_message_received_again_before_its_failed_attempt_finished_stays_in_flight(
    make_poller: Callable[..., Harness],
) -> None:
    # GIVEN no visibility delay after a failure, and a failed attempt that is held back just after it
    # made its message visible again, until the message has been received and is running again
    running_again = threading.Event()
    release = threading.Event()
    attempts: list[int] = []

    def handler(msg: func.QueueMessage) -> None:
        attempts.append(msg.dequeue_count or 0)
        if msg.dequeue_count == 1:
            raise RuntimeError("first attempt fails")
        running_again.set()
        release.wait(15)

    def hold_the_failed_attempt(_ident: str, visibility_timeout: int) -> None:
        if visibility_timeout == 0:  # the failed attempt returning its message
            assert running_again.wait(15)

    harness = make_poller(handler, QueueSettings(visibility_timeout=0, max_polling_interval=0.2))
    harness.queue.after_update = hold_the_failed_attempt
    harness.queue.send_message("Ym9keQ==")
    harness.poller.start()
    try:
        assert running_again.wait(15)
        # WHEN the host stops while the second attempt runs (the first one's clean-up now done or about to be)
        harness.poller.request_stop()
        # THEN the second attempt still counts as in flight: stopping does not report it finished
        assert harness.poller.wait(1.0) is False
    finally:
        release.set()
    assert attempts == [1, 2]
    wait_until(lambda: not harness.queue.messages)

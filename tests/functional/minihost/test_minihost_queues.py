"""Queue triggers against Azurite: delivery, retries, poison queue, encodings, async, leases, shutdown."""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from pathlib import Path

import pytest
from minihost_helpers import RunningHost, StartHost, b64, create_queue, visible_messages, wait_until

pytestmark = pytest.mark.functional


def test_a_message_arrives_decoded_with_its_metadata_and_is_deleted(start_host: StartHost) -> None:
    # GIVEN a running host WHEN a base64 message with a non-ASCII JSON body is sent
    running = start_host()
    body = json.dumps({"displayName": "Zoë Ångström", "note": "✓ 日本"}, ensure_ascii=False)
    message_id = running.send("ok", body)

    # THEN the function receives the exact text as func.QueueMessage with the storage metadata
    (seen,) = running.wait_for_records("queue_ok", 1)
    assert seen["body"] == body
    assert seen["id"] == message_id
    assert seen["dequeue_count"] == 1
    assert seen["pop_receipt"]
    assert seen["insertion_time"]
    assert seen["expiration_time"]
    assert seen["time_next_visible"]
    assert seen["type"] == "azure.functions.queue.QueueMessage"
    # AND the message is deleted after success
    wait_until(lambda: not visible_messages(running.queue("ok")) and _count(running.queue("ok")) == 0)


def test_a_failing_message_is_retried_with_a_growing_dequeue_count_until_it_succeeds(
    start_host: StartHost,
) -> None:
    # GIVEN a function that fails on its first two attempts
    running = start_host()
    running.send("flaky", "retry me")

    # WHEN it has run three times THEN it saw dequeue counts 1, 2, 3 and the message is gone, not poisoned
    seen = running.wait_for_records("queue_flaky", 3)
    assert [row["dequeue_count"] for row in seen] == [1, 2, 3]
    wait_until(lambda: _count(running.queue("flaky")) == 0)
    assert not visible_messages(running.queue(running.queues["flaky"] + "-poison"))
    # AND the retries waited for host.json's visibilityTimeout (1 s) in between
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(seen)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_a_message_that_always_fails_ends_in_the_poison_queue_intact(
    start_host: StartHost, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a function that always fails and maxDequeueCount 5
    caplog.set_level(logging.WARNING, logger="minihost")
    running = start_host()
    body = json.dumps({"type": "employee.hired", "name": "Ada Lovelace — née Byron"}, ensure_ascii=False)
    running.send("fail", body)

    # WHEN it has been tried five times
    seen = running.wait_for_records("queue_always_fails", 5, timeout=20)
    poison = running.queue(running.queues["fail"] + "-poison")
    (poisoned,) = wait_until(lambda: visible_messages(poison), timeout=5)

    # THEN it moved to <queue>-poison with the same base64 body, and nothing is left behind or lost
    assert [row["dequeue_count"] for row in seen] == [1, 2, 3, 4, 5]
    assert poisoned.content == b64(body)
    wait_until(lambda: _count(running.queue("fail")) == 0)
    assert len(running.records("queue_always_fails")) == 5
    warnings = [r for r in caplog.records if getattr(r, "function_name", "") == "queue_always_fails"]
    assert any("maxDequeueCount" in r.getMessage() and r.levelno == logging.WARNING for r in warnings)


def test_a_message_dequeued_too_often_goes_to_poison_without_an_invocation(start_host: StartHost) -> None:
    # GIVEN a message some other consumer already dequeued five times (maxDequeueCount is 5)
    def dequeue_five_times(running: RunningHost) -> None:
        queue = create_queue(running.queue("ok"))
        queue.send_message(b64("stale"))
        for _ in range(5):
            (message,) = wait_until(
                lambda: list(queue.receive_messages(max_messages=1, visibility_timeout=30))
            )
            queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)

    # WHEN the host receives it (the sixth dequeue)
    running = start_host(before_start=dequeue_five_times)
    poison = running.queue(running.queues["ok"] + "-poison")
    (poisoned,) = wait_until(lambda: visible_messages(poison))

    # THEN it is poisoned as it was, and the function never ran
    assert poisoned.content == b64("stale")
    assert running.records("queue_ok") == []


def write_host_json(tmp_path: Path, **queues: object) -> Path:
    path = tmp_path / "host.json"
    settings = {"maxPollingInterval": "00:00:01", "visibilityTimeout": "00:00:01", **queues}
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": settings}}))
    return path


def test_a_message_that_is_not_base64_fails_and_is_poisoned_unchanged(
    start_host: StartHost, tmp_path: Path
) -> None:
    # GIVEN messageEncoding base64 and maxDequeueCount 1
    running = start_host(host_json=write_host_json(tmp_path, maxDequeueCount=1))
    # WHEN a raw text message arrives
    create_queue(running.queue("ok")).send_message("this is not base64!")
    # THEN the function is not invoked and the message lands in poison as it was sent
    poison = running.queue(running.queues["ok"] + "-poison")
    (poisoned,) = wait_until(lambda: visible_messages(poison))
    assert poisoned.content == "this is not base64!"
    assert running.records("queue_ok") == []


def test_message_encoding_none_passes_the_text_through(start_host: StartHost, tmp_path: Path) -> None:
    running = start_host(host_json=write_host_json(tmp_path, messageEncoding="none"))
    create_queue(running.queue("ok")).send_message("plain text é")
    (seen,) = running.wait_for_records("queue_ok", 1)
    assert seen["body"] == "plain text é"


def test_async_functions_run_on_the_event_loop_concurrently(start_host: StartHost) -> None:
    # GIVEN four messages waiting before the host starts (batchSize 4), each for an invocation that
    # waits (up to 10 s) until all four are running
    group = uuid.uuid4().hex

    def enqueue(running: RunningHost) -> None:
        queue = create_queue(running.queue("async"))
        for n in range(4):
            queue.send_message(b64(json.dumps({"n": n, "together": [group, 4]})))

    # WHEN the host picks them up
    running = start_host(before_start=enqueue)
    seen = running.wait_for_records("queue_async", 4, timeout=20)

    # THEN each ran as an asyncio task on the host's loop thread, all four at the same time
    assert all(row["in_task"] and row["thread"] == "minihost-asyncio" for row in seen)
    assert [row["together"] for row in seen] == [True] * 4
    assert max(row["started"] for row in seen) < min(row["finished"] for row in seen)


def test_a_slow_invocation_keeps_its_message_leased_and_runs_once(start_host: StartHost) -> None:
    # GIVEN a 2-second lease (renewed once it is 1 s old) and two functions that take 3 s each: without
    # renewal their messages would be visible again, and received again, a second before they finish
    def enqueue(running: RunningHost) -> None:
        queue = create_queue(running.queue("slow"))
        for _ in range(2):
            queue.send_message(b64(json.dumps({"sleep": 3})))

    running = start_host(before_start=enqueue, message_lease=2.0)

    # WHEN both have finished
    finished = running.wait_for_records("queue_slow_finished", 2, timeout=20)

    # THEN they ran side by side (sync functions share a thread pool), each exactly once
    started = running.records("queue_slow_started")
    assert len(started) == 2
    assert [row["dequeue_count"] for row in started] == [1, 1]
    assert max(row["at"] for row in started) < min(row["at"] for row in finished)
    wait_until(lambda: _count(running.queue("slow")) == 0)


def test_stop_lets_a_running_invocation_finish_and_settle_its_message(start_host: StartHost) -> None:
    # GIVEN an invocation in progress
    running = start_host()
    running.send("slow", json.dumps({"sleep": 1}))
    running.wait_for_records("queue_slow_started", 1)

    # WHEN the host is stopped
    running.host.stop()

    # THEN stop() returned only after the function finished and its message was deleted
    assert len(running.records("queue_slow_finished")) == 1
    assert _count(running.queue("slow")) == 0


def _count(queue: object) -> int:
    properties = queue.get_queue_properties()  # type: ignore[attr-defined]
    return int(properties.approximate_message_count)

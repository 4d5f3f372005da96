"""host.json functionTimeout against Azurite: overruns fail like any failure (retry, poison, 500)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from minihost_helpers import RunningHost, StartHost, b64, visible_messages, wait_until

pytestmark = pytest.mark.functional


def start_with_timeout(start_host: StartHost, tmp_path: Path, timeout: str, **queues: object) -> RunningHost:
    """A host whose host.json sets `functionTimeout` (and retries failed messages at once)."""
    path = tmp_path / "host.json"
    settings = {"maxPollingInterval": "00:00:01", "visibilityTimeout": "00:00:00", **queues}
    doc = {"version": "2.0", "functionTimeout": timeout, "extensions": {"queues": settings}}
    path.write_text(json.dumps(doc))
    return start_host(host_json=path)


def test_an_async_overrun_is_cancelled_retried_and_poisoned_with_its_body_intact(
    start_host: StartHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN functionTimeout 0.5 s, maxDequeueCount 2 and an async function that sleeps 30 s
    caplog.set_level(logging.INFO, logger="minihost")
    running = start_with_timeout(start_host, tmp_path, "00:00:00.5", maxDequeueCount=2)
    body = json.dumps({"sleep": 30, "note": "Zoë"}, ensure_ascii=False)
    running.send("async", body)

    # WHEN the message has been tried twice
    poison = running.queue(running.queues["async"] + "-poison")
    (poisoned,) = wait_until(lambda: visible_messages(poison), timeout=20)

    # THEN each try was cancelled (the function saw CancelledError) and the message went to poison unchanged
    cancelled = running.wait_for_records("queue_async_cancelled", 2)
    assert [row["dequeue_count"] for row in cancelled] == [1, 2]
    assert poisoned.content == b64(body)
    assert running.records("queue_async") == []
    # AND each timeout was logged as the Functions host logs it, then the execution as failed
    timeouts = [
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "Timeout" in r.getMessage()
    ]
    assert len(timeouts) >= 2
    assert timeouts[0].startswith(
        "Timeout value of 00:00:00.5000000 exceeded by function 'Functions.queue_async'"
    )
    assert timeouts[0].endswith("Initiating cancellation.")
    assert any(r.getMessage().startswith("Executed queue_async (Failed") for r in caplog.records)


def test_a_sync_overrun_settles_its_message_while_the_function_still_runs(
    start_host: StartHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN functionTimeout 0.5 s, maxDequeueCount 1 and a sync function that sleeps 5 s
    caplog.set_level(logging.INFO, logger="minihost")
    running = start_with_timeout(start_host, tmp_path, "00:00:00.5", maxDequeueCount=1)
    body = json.dumps({"sleep": 5})
    running.send("slow", body)

    # WHEN it overruns THEN the poller stops waiting for it: the message is poisoned before the function ends
    poison = running.queue(running.queues["slow"] + "-poison")
    (poisoned,) = wait_until(lambda: visible_messages(poison), timeout=20)
    assert poisoned.content == b64(body)
    assert running.records("queue_slow_finished") == []
    (started,) = running.records("queue_slow_started")
    assert started["thread"] == "function-queue_slow"
    assert any("cannot be stopped" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_functions_within_the_timeout_are_unaffected(start_host: StartHost, tmp_path: Path) -> None:
    # GIVEN functionTimeout 10 s WHEN quick sync and async functions run THEN they succeed as before
    running = start_with_timeout(start_host, tmp_path, "00:00:10")
    running.send("ok", "hello")
    running.send("async", json.dumps({"sleep": 0}))
    (seen,) = running.wait_for_records("queue_ok", 1)
    assert seen["body"] == "hello"
    running.wait_for_records("queue_async", 1)
    wait_until(
        lambda: not visible_messages(running.queue("ok")) and not visible_messages(running.queue("async"))
    )
    with httpx.Client(base_url=running.api, timeout=10) as client:
        assert client.get("/sleep/0").text == "awake"


def test_an_http_overrun_answers_500(start_host: StartHost, tmp_path: Path) -> None:
    # GIVEN functionTimeout 0.5 s WHEN a request runs a function that sleeps 2 s THEN the client gets a 500
    running = start_with_timeout(start_host, tmp_path, "00:00:00.5")
    with httpx.Client(base_url=running.api, timeout=10) as client:
        response = client.get("/sleep/2")
        assert response.status_code == 500
        assert response.json()["function"] == "sleepy"
        # AND the host goes on serving
        assert client.get("/health").status_code == 200

"""A broken rollout plan fails every worker message; the failure notes and the poison archive, which
need only storage, must keep working, or the messages would vanish into an unwatched queue."""

from __future__ import annotations

import asyncio

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from handlers import poison
from handlers.queue_worker import run_queue_worker
from shared.envelope import Envelope
from shared.errors import ConfigError, RetryableError
from shared.names import ALERTS, HR_EVENTS
from shared.onboarding.worker import HR_WORKER
from shared.poison import FAILURES_NAMESPACE, POISON_NAMESPACE
from shared.queues import MemoryQueues
from shared.services import Services, ServicesProvider, Storage
from shared.state import build_memory_state


def _broken_plan() -> Services:
    raise ConfigError("config/waveguard.yaml: waves[0].group: field required", field="waves[0].group")


def test_a_worker_failure_under_a_broken_plan_is_noted_and_its_poison_archived_and_paged() -> None:
    stores, queues = build_memory_state(), MemoryQueues()
    provider = ServicesProvider(_broken_plan, lambda: Storage(stores, queues))
    body = Envelope(type="employee.hired", payload={}, id="env-1").to_json().encode()

    # WHEN the hr-events worker gets a message THEN it fails (retryable: the plan may be fixed)...
    with pytest.raises(RetryableError, match="invalid configuration"):
        asyncio.run(
            run_queue_worker(func.QueueMessage(body=body), provider, queue=HR_EVENTS, worker=HR_WORKER)
        )
    # ...and notes why, for the archive
    [failure] = stores.kv.values(FAILURES_NAMESPACE)
    assert "invalid configuration" in failure["error"]

    # WHEN the host moves it to hr-events-poison THEN the archive keeps it and raises PoisonMessage
    app = func.FunctionApp()
    app.register_functions(poison.blueprint(provider))
    [archive] = [f for f in app.get_functions() if f.get_function_name() == "hr_events_poison"]
    message = QueueMessage(id="m-1", body=body, dequeue_count=1)
    asyncio.run(archive.get_user_function()(message))
    [record] = stores.kv.values(POISON_NAMESPACE)
    assert (record["envelopeId"], "invalid configuration" in record["lastError"]) == ("env-1", True)
    assert [e.payload["labels"]["alertname"] for e in queues.on(ALERTS)] == ["PoisonMessage"]

"""Queue set-up shared by tests that drive real Azurite queues."""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient


def fresh_queue(connection_string: str, name: str) -> QueueClient:
    """The queue ``name``, created if missing and emptied otherwise."""
    queue = QueueClient.from_connection_string(connection_string, name)
    try:
        queue.create_queue()
    except ResourceExistsError:
        queue.clear_messages()
    return queue

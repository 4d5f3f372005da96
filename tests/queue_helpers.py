"""Queue set-up shared by tests that drive real Azurite queues."""

from __future__ import annotations

import base64

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.envelope import Envelope


def fresh_queue(connection_string: str, name: str) -> QueueClient:
    """The queue ``name``, created if missing and emptied otherwise."""
    queue = QueueClient.from_connection_string(connection_string, name)
    try:
        queue.create_queue()
    except ResourceExistsError:
        queue.clear_messages()
    return queue


def peek_envelopes(connection_string: str, name: str, max_messages: int = 32) -> list[Envelope]:
    """The envelopes waiting on ``name`` (oldest first, left in place); none when it does not exist."""
    queue = QueueClient.from_connection_string(connection_string, name)
    try:
        messages = list(queue.peek_messages(max_messages=max_messages))
    except ResourceNotFoundError:
        return []
    return [Envelope.from_json(base64.b64decode(m.content)) for m in messages]

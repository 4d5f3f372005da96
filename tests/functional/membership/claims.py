"""Chunk claims in the idempotency table as a test sees them, and how a test stands in for their expiry.

A worker that dies mid-chunk leaves its claim ``in_progress`` until ``chunk_claim_expiry`` has passed
since ``StartedAt``. Rather than waiting that long (or racing a short expiry against a slow machine),
a test back-dates ``StartedAt``: the next claim then sees exactly what it would see once the expiry
had passed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.names import TABLE_IDEMPOTENCY
from shared.state.tables import table_key


def claim_address(key: str) -> tuple[str, str]:
    """The (PartitionKey, RowKey) the idempotency store keeps ``key`` under."""
    return hashlib.sha256(key.encode()).hexdigest()[:2], table_key(key)


def read_claim(storage: str, key: str, *, table: str = TABLE_IDEMPOTENCY) -> dict[str, Any] | None:
    """The stored claim for ``key`` (``Status``, ``StartedAt``...), or None."""
    client = TableClient.from_connection_string(storage, table)
    try:
        return dict(client.get_entity(*claim_address(key)))
    except ResourceNotFoundError:
        return None


def backdate_claim(storage: str, key: str, started: datetime, *, table: str = TABLE_IDEMPOTENCY) -> None:
    """What the claim looks like once the worker's in-progress expiry has passed."""
    client = TableClient.from_connection_string(storage, table)
    entity = client.get_entity(*claim_address(key))
    assert entity["Status"] == "in_progress"
    entity["StartedAt"] = started.isoformat()
    client.update_entity(
        entity,
        mode=UpdateMode.MERGE,
        etag=entity.metadata["etag"],
        match_condition=MatchConditions.IfNotModified,
    )

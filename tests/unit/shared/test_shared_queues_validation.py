"""QueueSender refuses bad sends before any network call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from local.azurite import connection_string
from shared.config import load_settings
from shared.envelope import Envelope
from shared.errors import ConfigError, InvalidPayloadError
from shared.queues import QueueSender, validate_queue_name

# Port 9 (discard) on loopback: nothing is sent because every case fails validation first.
UNUSED = connection_string(blob_port=9, queue_port=9, table_port=9)


@pytest.fixture
def sender() -> QueueSender:
    return QueueSender.from_settings(load_settings({"AzureWebJobsStorage": UNUSED}))


@pytest.mark.parametrize("name", ["HR-Events", "ab", "a--b", "-ab", "ab-", "x" * 64, "hr_events"])
def test_invalid_queue_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        validate_queue_name(name)
    assert caught.value.field == "queue_name"


@pytest.mark.parametrize("name", ["hr-events", "hr-events-poison", "abc", "a" * 63])
def test_valid_queue_names_pass(name: str) -> None:
    assert validate_queue_name(name) == name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"delay": timedelta(days=7, seconds=1)}, "delay"),
        ({"delay": float("nan")}, "delay"),
        ({"ttl": 0}, "ttl"),
        ({"delay": 60, "ttl": 60}, "ttl"),
    ],
)
def test_impossible_schedules_are_refused_clearly(
    sender: QueueSender, kwargs: dict[str, float], field: str
) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        sender.send("hr-events", Envelope(type="x.y", payload={}), **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_sender_needs_storage_settings() -> None:
    with pytest.raises(ConfigError, match="AzureWebJobsStorage"):
        QueueSender.from_settings(load_settings({}))

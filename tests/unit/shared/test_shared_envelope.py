"""The queue envelope: exact round trips, clear field errors, and the queue size limit."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.envelope import MAX_QUEUE_MESSAGE_BYTES, Envelope
from shared.errors import InvalidPayloadError

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _wire(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "msg_2K9f",
        "type": "employee.hired",
        "version": 1,
        "occurredAt": "2026-12-01T08:00:00Z",
        "traceparent": TRACEPARENT,
        "payload": {"employeeId": "E1001"},
    }
    body.update(overrides)
    return body


def _fields(exc: InvalidPayloadError) -> list[str]:
    return [e["field"] for e in exc.errors]


def test_round_trip_is_exact_and_the_wire_uses_camel_case_and_z() -> None:
    # GIVEN an envelope with microseconds and a non-ASCII payload
    envelope = Envelope(
        type="employee.hired",
        payload={"displayName": "Zoë Ångström", "n": 3, "x": 0.1, "nested": {"a": [1, None, True]}},
        occurred_at=datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC),
        traceparent=TRACEPARENT,
    )
    # WHEN it goes over the wire and back
    text = envelope.to_json()
    # THEN nothing changed, and the wire form is what other tools expect
    assert Envelope.from_json(text) == envelope
    assert Envelope.from_json(text.encode()) == envelope
    wire = json.loads(text)
    assert wire["occurredAt"] == "2026-12-01T08:00:00.123456Z"
    assert set(wire) == {"id", "type", "version", "occurredAt", "traceparent", "payload"}
    assert text.isascii()


def test_defaults_give_a_fresh_id_version_1_and_utc_now() -> None:
    before = datetime.now(UTC)
    a, b = Envelope(type="wave.tick", payload={}), Envelope(type="wave.tick", payload={})
    assert a.id != b.id
    assert len(a.id) == 32
    assert a.version == 1
    assert a.traceparent is None
    assert before <= a.occurred_at <= datetime.now(UTC)


def test_other_time_zones_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    envelope = Envelope(type="x.y", payload={}, occurred_at=datetime(2026, 12, 1, 9, 0, tzinfo=paris))
    assert envelope.to_dict()["occurredAt"] == "2026-12-01T08:00:00Z"
    assert Envelope.from_json(
        json.dumps(_wire(occurredAt="2026-12-01T09:00:00+01:00"))
    ).occurred_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_missing_fields_are_all_reported_by_name() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json('{"type": "employee.hired"}')
    assert _fields(caught.value) == ["id", "version", "occurredAt", "payload"]
    assert "id: is required" in str(caught.value)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": 42}, "id"),
        ({"type": "no spaces allowed"}, "type"),
        ({"version": "1"}, "version"),
        ({"version": True}, "version"),
        ({"version": 0}, "version"),
        ({"occurredAt": "yesterday"}, "occurredAt"),
        ({"occurredAt": "2026-12-01T08:00:00"}, "occurredAt"),
        ({"traceparent": 7}, "traceparent"),
        ({"payload": [1, 2]}, "payload"),
    ],
)
def test_invalid_fields_are_named(override: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(_wire(**override)))
    assert _fields(caught.value) == [field]


TYPE_HINT = "expected a message type such as 'employee.hired' (letters, digits, . _ : -)"
TIMESTAMP_HINT = "expected an ISO-8601 timestamp with a zone, e.g. 2026-12-01T08:00:00Z"


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"id": ""}, "id", "expected a non-empty string"),
        ({"id": "   "}, "id", "expected a non-empty string"),
        ({"id": 42}, "id", "expected a non-empty string"),
        ({"id": "a" * 201}, "id", "expected at most 200 printable characters"),
        ({"id": "tab\there"}, "id", "expected at most 200 printable characters"),
        ({"type": "no spaces allowed"}, "type", TYPE_HINT),
        ({"type": "9lives"}, "type", TYPE_HINT),
        ({"type": "a" * 101}, "type", TYPE_HINT),
        ({"type": ["employee.hired"]}, "type", TYPE_HINT),
        ({"version": 2}, "version", "unsupported version 2; this worker understands 1"),
        ({"version": "1"}, "version", "expected a positive integer"),
        ({"version": 1.0}, "version", "expected a positive integer"),
        ({"version": True}, "version", "expected a positive integer"),
        ({"version": 0}, "version", "expected a positive integer"),
        ({"occurredAt": "2026-12-01T08:00:00"}, "occurredAt", TIMESTAMP_HINT),
        ({"occurredAt": "yesterday"}, "occurredAt", TIMESTAMP_HINT),
        ({"occurredAt": "0001-01-01T00:00:00+01:00"}, "occurredAt", TIMESTAMP_HINT),
        ({"occurredAt": 1764576000}, "occurredAt", "expected a string, got a number"),
        ({"traceparent": 7}, "traceparent", "expected a string or null, got a number"),
        ({"traceparent": {}}, "traceparent", "expected a string or null, got an object"),
        ({"payload": [1, 2]}, "payload", "expected a JSON object, got an array"),
        ({"payload": "{}"}, "payload", "expected a JSON object, got a string"),
        ({"payload": None}, "payload", "expected a JSON object, got null"),
    ],
)
def test_each_bad_wire_field_has_its_own_wording(
    override: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(_wire(**override)))
    assert caught.value.errors == [{"field": field, "message": message}]
    assert str(caught.value) == f"invalid envelope: {field}: {message}"
    assert caught.value.field == field
    assert caught.value.kind == "permanent"


def test_a_missing_id_is_required_and_names_no_envelope() -> None:
    body = _wire()
    del body["id"]
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(body))
    assert caught.value.errors == [{"field": "id", "message": "is required"}]
    assert str(caught.value) == "invalid envelope: id: is required"
    assert caught.value.context == {"envelope_id": None}


def test_only_the_missing_fields_are_reported_when_some_are_missing() -> None:
    # GIVEN a body missing its id and payload, with a bad type as well
    body = _wire(type="no spaces")
    del body["id"], body["payload"]
    # THEN the missing fields are what is reported (fix those first)
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(body))
    assert str(caught.value) == "invalid envelope: id: is required; payload: is required"


def test_every_bad_field_is_reported_in_one_error_in_a_fixed_order() -> None:
    body = _wire(id="", type="x y", version=0, occurredAt="soon", traceparent=1, payload=[])
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(body))
    assert _fields(caught.value) == ["id", "type", "version", "payload", "occurredAt", "traceparent"]
    assert str(caught.value).startswith("invalid envelope: id: expected a non-empty string; type: ")
    assert caught.value.field is None  # several fields: none singled out


def test_a_wire_error_carries_the_envelope_id_when_it_is_usable() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(_wire(version=2)))
    assert caught.value.context == {"envelope_id": "msg_2K9f"}
    assert caught.value.to_dict()["envelope_id"] == "msg_2K9f"
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(_wire(id="a" * 201)))
    assert caught.value.context == {"envelope_id": None}


def test_the_wire_uses_camel_case_names_only() -> None:
    # GIVEN a body that spells occurredAt the Python way
    body = _wire()
    body["occurred_at"] = body.pop("occurredAt")
    # THEN that key is an unknown (ignored) field and occurredAt is missing
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(body))
    assert caught.value.errors == [{"field": "occurredAt", "message": "is required"}]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"id": ""}, "id", "expected a non-empty string"),
        ({"id": " "}, "id", "expected a non-empty string"),
        ({"type": "no spaces allowed"}, "type", TYPE_HINT),
        ({"version": 2}, "version", "unsupported version 2; this worker understands 1"),
        ({"version": "1"}, "version", "expected a positive integer"),
        ({"version": True}, "version", "expected a positive integer"),
        ({"payload": [1, 2]}, "payload", "expected a JSON object, got an array"),
        ({"occurred_at": datetime(2026, 1, 1)}, "occurredAt", "must be timezone-aware (UTC)"),
        ({"traceparent": 7}, "traceparent", "expected a string or null, got a number"),
    ],
)
def test_a_bad_envelope_built_in_code_has_the_same_wording(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    arguments: dict[str, Any] = {"type": "x.y", "payload": {}, **overrides}
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope(**arguments)
    assert caught.value.errors == [{"field": field, "message": message}]
    assert str(caught.value) == f"invalid envelope: {field}: {message}"
    assert "envelope_id" not in caught.value.context


def test_an_envelope_built_in_code_never_raises_a_pydantic_error() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope(type="x.y")  # type: ignore[call-arg]
    assert caught.value.errors == [{"field": "payload", "message": "is required"}]


def test_a_bad_traceparent_is_dropped_in_code_too() -> None:
    assert Envelope(type="x.y", payload={}, traceparent="00-zz-zz-01").traceparent is None
    assert Envelope(type="x.y", payload={}, traceparent=TRACEPARENT.upper()).traceparent is None
    assert Envelope(type="x.y", payload={}, traceparent=TRACEPARENT).traceparent == TRACEPARENT


def test_an_envelope_is_immutable_and_keeps_the_payload_it_was_given() -> None:
    payload = {"employeeId": "E1001"}
    envelope = Envelope(type="x.y", payload=payload)
    assert envelope.payload is payload  # not copied on the hot path
    with pytest.raises(ValidationError, match="frozen"):
        envelope.id = "other"  # type: ignore[misc]
    # a changed copy is a new envelope; the original is untouched
    stamped = envelope.model_copy(update={"traceparent": TRACEPARENT})
    assert (stamped.traceparent, envelope.traceparent) == (TRACEPARENT, None)
    assert stamped.id == envelope.id


def test_a_future_version_is_a_permanent_error_naming_the_version() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(json.dumps(_wire(version=2)))
    assert caught.value.kind == "permanent"
    assert caught.value.errors == [
        {"field": "version", "message": "unsupported version 2; this worker understands 1"}
    ]


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8", "not json", "[1, 2]", '{"payload": NaN}', "[" * 100_000 + "]" * 100_000, "1e999"],
)
def test_malformed_bodies_are_invalid_payload_on_body(body: str | bytes) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        Envelope.from_json(body)
    assert _fields(caught.value) == ["body"]


def test_an_invalid_traceparent_is_ignored_as_w3c_requires() -> None:
    envelope = Envelope.from_json(json.dumps(_wire(traceparent="garbage")))
    assert envelope.traceparent is None


def test_unknown_top_level_fields_are_ignored_for_forward_compatibility() -> None:
    assert Envelope.from_json(json.dumps(_wire(priority="high"))).id == "msg_2K9f"


def test_constructing_a_bad_envelope_in_code_fails_loudly() -> None:
    with pytest.raises(InvalidPayloadError, match="occurredAt"):
        Envelope(type="x.y", payload={}, occurred_at=datetime(2026, 1, 1))  # naive: ambiguous
    with pytest.raises(InvalidPayloadError, match="payload"):
        Envelope(type="x.y", payload={"when": datetime.now(UTC)}).to_json()


def test_queue_text_refuses_messages_over_64_kib_after_base64() -> None:
    # GIVEN a payload just small enough, and one just too large, once base64-encoded
    overhead = len(Envelope(type="x.y", payload={"blob": ""}, id="i").to_json())
    fits = Envelope(type="x.y", payload={"blob": "a" * (MAX_QUEUE_MESSAGE_BYTES * 3 // 4 - overhead)}, id="i")
    too_big = Envelope(
        type="x.y", payload={"blob": "a" * (MAX_QUEUE_MESSAGE_BYTES * 3 // 4 - overhead + 1)}, id="i"
    )
    # THEN the first is accepted and fits, the second is refused before sending
    assert len(base64.b64encode(fits.to_queue_text().encode())) <= MAX_QUEUE_MESSAGE_BYTES
    with pytest.raises(InvalidPayloadError) as caught:
        too_big.to_queue_text()
    assert caught.value.errors == [
        {
            "field": "payload",
            "message": f"message is {MAX_QUEUE_MESSAGE_BYTES + 4} bytes after base64; a storage queue "
            "message holds at most 65536 bytes (store large data elsewhere and send a reference)",
        }
    ]
    assert caught.value.context == {"envelope_id": "i"}


def _parse_or_explain(body: str | bytes) -> None:
    """Either a valid envelope that round-trips, or an InvalidPayloadError naming fields; nothing else."""
    errors: list[object] = []
    envelope: Envelope | None = None
    try:
        envelope = Envelope.from_json(body)
    except InvalidPayloadError as exc:
        errors = list(exc.errors)
    if envelope is None:
        assert errors
    else:
        assert Envelope.from_json(envelope.to_json()) == envelope


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_envelope_or_invalid_payload_and_nothing_else(body: bytes) -> None:
    _parse_or_explain(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.dictionaries(st.text(), json_values, max_size=5),
    occurred=st.datetimes(min_value=datetime(1971, 1, 1), timezones=st.just(UTC)),
)
def test_any_json_payload_round_trips_exactly(payload: dict[str, object], occurred: datetime) -> None:
    envelope = Envelope(type="employee.updated", payload=payload, occurred_at=occurred)
    assert Envelope.from_json(envelope.to_json()) == envelope


wire_keys = st.sampled_from(["id", "type", "version", "occurredAt", "traceparent", "payload"]) | st.text(
    max_size=5
)
wire_values = json_values | st.sampled_from(["2026-12-01T08:00:00Z", "employee.hired", 1, 2, TRACEPARENT, {}])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(wire_keys, wire_values, max_size=8))
def test_arbitrary_json_objects_give_an_envelope_or_invalid_payload(body: dict[str, object]) -> None:
    _parse_or_explain(json.dumps(body))


def test_in_code_an_unknown_or_misspelt_keyword_is_a_type_error_not_a_silent_default() -> None:
    with pytest.raises(TypeError, match="occurredAt"):
        Envelope(type="employee.hired", payload={}, occurredAt=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="traceParent"):
        Envelope(type="employee.hired", payload={}, traceParent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")  # type: ignore[call-arg]


def test_with_traceparent_checks_the_value_like_the_field() -> None:
    envelope = Envelope(type="employee.hired", payload={})
    good = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert envelope.with_traceparent(good).traceparent == good
    assert envelope.with_traceparent("garbage<script>").traceparent is None
    assert envelope.with_traceparent(good).id == envelope.id

"""What one hire costs in state round trips, counted at the stores' storage calls (each one is one
Azure Tables request in production; a ``get_many`` is one query)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import pytest

from shared.errors import RetryableError
from shared.offload import direct
from shared.onboarding.worker import process_hr_message
from shared.state import AuditEntry, StateStores
from shared.state.idempotency import IdempotencyRecord
from shared.state.memory import MemoryAuditLog, MemoryIdempotencyStore, MemoryKeyValueStore
from shared.state.once import CompletionNotRecorded
from tests.unit.onboarding.onboarding_fakes import Clock, World, hire_event, make_world


class CountingIdempotency(MemoryIdempotencyStore):
    def __init__(self, calls: Counter[str], clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls = calls
        self.fail_completions = 0

    def _read(self, key: str) -> IdempotencyRecord | None:
        self.calls["idempotency.read"] += 1
        return super()._read(key)

    def _insert(self, record: IdempotencyRecord) -> str:
        self.calls["idempotency.insert"] += 1
        return super()._insert(record)

    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> str:
        self.calls[f"idempotency.replace {record.status}"] += 1
        if record.status == "completed" and self.fail_completions:
            self.fail_completions -= 1
            raise RetryableError("storage timed out")
        return super()._replace(record, etag=etag)

    def _update(
        self,
        key: str,
        *,
        etag: str,
        progress: dict[str, Any] | None,
        status: Literal["in_progress", "released"] | None = None,
    ) -> str:
        self.calls[f"idempotency.update {status or 'progress'}"] += 1
        return super()._update(key, etag=etag, progress=progress, status=status)

    def _upsert(self, record: IdempotencyRecord) -> None:
        self.calls["idempotency.upsert"] += 1
        super()._upsert(record)

    def _delete(self, key: str, *, etag: str | None) -> None:
        self.calls["idempotency.delete"] += 1
        super()._delete(key, etag=etag)


class CountingKeyValue(MemoryKeyValueStore):
    def __init__(self, calls: Counter[str]) -> None:
        super().__init__()
        self.calls = calls
        self._in_many = False

    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        if not self._in_many:
            self.calls[f"kv.read {namespace}"] += 1
        return super()._read(namespace, key)

    def _read_many(self, namespace: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        self.calls[f"kv.query {namespace}"] += 1  # one Tables query, however many keys
        self._in_many = True
        try:
            return super()._read_many(namespace, keys)
        finally:
            self._in_many = False

    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        self.calls[f"kv.write {namespace}"] += 1
        return super()._write(namespace, key, text, if_match=if_match, if_absent=if_absent)


class CountingAudit(MemoryAuditLog):
    def __init__(self, calls: Counter[str], clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls = calls

    def _append(self, entry: AuditEntry) -> None:
        self.calls["audit.append"] += 1
        super()._append(entry)

    def _append_once(self, entries: Sequence[AuditEntry]) -> None:
        self.calls["audit.append_once"] += 1  # one Tables transaction, however many entries
        super()._append_once(entries)


def _counting_world(calls: Counter[str]) -> World:
    def stores(clock: Clock) -> StateStores:
        return StateStores(
            idempotency=CountingIdempotency(calls, clock),
            kv=CountingKeyValue(calls),
            audit=CountingAudit(calls, clock),
            offload=direct,
        )

    world = make_world(stores=stores)
    world.graph.add_user("ada.lovelace@contoso.com", employee_id="E9001", display_name="Ada Lovelace")
    world.graph.add_user("alan.turing@contoso.com", employee_id="E9002", display_name="Alan Turing")
    return world


SECOND = hire_event(envelope_id="whk-2", employeeId="E9002", userPrincipalName="alan.turing@contoso.com")


async def test_a_hire_costs_six_state_round_trips_once_its_wave_group_is_known() -> None:
    calls: Counter[str] = Counter()
    world = _counting_world(calls)
    await process_hr_message(hire_event().to_json(), world.deps)  # resolves (creates) the wave group
    calls.clear()
    await process_hr_message(SECOND.to_json(), world.deps)
    assert dict(calls) == {
        "idempotency.insert": 1,  # the claim (onboarding:<envelope id>): a new one has no progress
        "kv.query leavers": 1,  # left since the hire? once the TAP exists, before anything is mailed
        "idempotency.update progress": 1,  # the draft checkpointed before it is sent
        "kv.write registration": 1,  # registration tracking
        "audit.append_once": 1,  # wave.member.add, tap.create, tap.deliver: one transaction
        "idempotency.replace completed": 1,  # the completion, over the claim's version, no read
    }
    assert sum(calls.values()) == 6
    assert len(world.graph.outbox) == 2
    actions = [e.action for e in world.stores.audit.list() if e.correlation_id == "whk-2"]
    assert sorted(actions) == ["tap.create", "tap.deliver", "wave.member.add"]


async def _completion_lost(calls: Counter[str]) -> tuple[World, CountingIdempotency]:
    """A world where SECOND's e-mail went out but the store failed to record its completion."""
    world = _counting_world(calls)
    await process_hr_message(hire_event().to_json(), world.deps)
    store = world.stores.idempotency
    assert isinstance(store, CountingIdempotency)
    store.fail_completions = 1
    with pytest.raises(CompletionNotRecorded):
        await process_hr_message(SECOND.to_json(), world.deps)
    return world, store


async def test_a_hire_whose_completion_was_lost_resumes_from_the_claim_and_writes_nothing_twice() -> None:
    # GIVEN a hire whose e-mail went out but whose completion the store failed to record
    calls: Counter[str] = Counter()
    world, _ = await _completion_lost(calls)
    assert len(world.graph.outbox) == 2
    # WHEN the message comes back once the claim has expired (the worker cannot tell it was done)
    world.clock.advance(minutes=7)
    calls.clear()
    outcome = await process_hr_message(SECOND.to_json(), world.deps)
    # THEN it resumes from the progress the claim hands back: no second TAP, mail or audit entry
    assert outcome.status == "done"  # type: ignore[union-attr]
    assert len(world.graph.outbox) == 2
    entries = [e for e in world.stores.audit.list() if e.correlation_id == "whk-2"]
    assert sorted(e.action for e in entries) == ["tap.create", "tap.deliver", "wave.member.add"]
    assert calls["idempotency.replace in_progress"] == 1  # the takeover, handed the draft checkpoint


async def test_a_claim_left_by_an_earlier_version_resumes_from_its_state_record() -> None:
    # GIVEN a worker of the version that kept progress in state (hires/<envelope id>) sent the
    # e-mail and died before completing: its claim holds no progress, its record names the draft
    calls: Counter[str] = Counter()
    world, store = await _completion_lost(calls)
    key = "onboarding:whk-2"
    record = store.read(key)
    assert record is not None
    assert record.progress is not None
    world.stores.kv.put("hires", "whk-2", record.progress)
    store._records[key] = replace(record, progress=None)
    assert len(world.graph.outbox) == 2
    # WHEN this version takes the claim over
    world.clock.advance(minutes=7)
    outcome = await process_hr_message(SECOND.to_json(), world.deps)
    # THEN it finds the draft sent: no second TAP, no second e-mail
    assert outcome.status == "done"  # type: ignore[union-attr]
    assert len(world.graph.outbox) == 2
    assert calls["kv.read hires"] == 1

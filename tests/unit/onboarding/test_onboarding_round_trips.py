"""What one hire costs in state round trips, counted at the stores' storage calls (each one is one
Azure Tables request in production; a ``get_many`` is one query)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from shared.offload import direct
from shared.onboarding.worker import process_hr_message
from shared.state import AuditEntry, StateStores
from shared.state.idempotency import IdempotencyRecord
from shared.state.memory import MemoryAuditLog, MemoryIdempotencyStore, MemoryKeyValueStore
from tests.unit.onboarding.onboarding_fakes import Clock, hire_event, make_world


class CountingIdempotency(MemoryIdempotencyStore):
    def __init__(self, calls: Counter[str], clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls = calls

    def _read(self, key: str) -> IdempotencyRecord | None:
        self.calls["idempotency.read"] += 1
        return super()._read(key)

    def _insert(self, record: IdempotencyRecord) -> None:
        self.calls["idempotency.insert"] += 1
        super()._insert(record)

    def _replace(self, record: IdempotencyRecord, *, etag: str | None) -> None:
        self.calls["idempotency.replace"] += 1
        super()._replace(record, etag=etag)

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


async def test_a_hire_costs_twelve_state_round_trips_once_its_wave_group_is_known() -> None:
    calls: Counter[str] = Counter()

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
    await process_hr_message(hire_event().to_json(), world.deps)  # resolves (creates) the wave group
    calls.clear()
    second = hire_event(envelope_id="whk-2", employeeId="E9002", userPrincipalName="alan.turing@contoso.com")
    await process_hr_message(second.to_json(), world.deps)
    assert dict(calls) == {
        "idempotency.insert": 1,  # the claim (onboarding:<envelope id>)
        "idempotency.upsert": 1,  # its completion, without reading the claim back
        "kv.read hires": 1,  # the progress so far (none)
        "kv.query leavers": 2,  # left since the hire? before anything, and after the TAP exists
        "kv.write hires": 3,  # progress: the TAP issued, the draft saved, the mail sent
        "kv.write registration": 1,  # registration tracking
        "audit.append": 3,  # wave.member.add, tap.create, tap.deliver
    }
    assert sum(calls.values()) == 12
    assert len(world.graph.outbox) == 2

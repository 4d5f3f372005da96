"""One contract for both state backends: the in-memory twin and Azure Tables (on Azurite)."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidPayloadError, PermanentError
from shared.state import (
    AuditEntry,
    ClaimStatus,
    ConcurrencyError,
    StateStores,
)
from shared.state.tables import is_hashed_key, key_of_table_key, table_key
from tests.functional.shared.conftest import EXPIRY, T0, FakeClock

# --- idempotency -------------------------------------------------------------------------------


def test_the_first_claim_acquires_and_a_duplicate_sees_in_progress_with_its_age(
    stores: StateStores, clock: FakeClock
) -> None:
    first = stores.idempotency.claim("hr-events:msg-1", ttl=timedelta(days=1))
    clock.advance(timedelta(seconds=42))
    second = stores.idempotency.claim("hr-events:msg-1", ttl=timedelta(days=1))
    assert first.status is ClaimStatus.ACQUIRED
    assert second.status is ClaimStatus.IN_PROGRESS
    assert second.age == timedelta(seconds=42)
    assert second.expires_in == EXPIRY - timedelta(seconds=42)


def test_a_claim_after_complete_returns_the_stored_result(stores: StateStores) -> None:
    stores.idempotency.claim("tap:E1001", ttl=timedelta(days=7))
    stores.idempotency.complete("tap:E1001", {"tapMethodId": "m-1", "delivered": True})
    again = stores.idempotency.claim("tap:E1001", ttl=timedelta(days=7))
    assert again.completed
    assert again.result == {"tapMethodId": "m-1", "delivered": True}


def test_expired_keys_behave_as_absent(stores: StateStores, clock: FakeClock) -> None:
    stores.idempotency.claim("k", ttl=timedelta(hours=1))
    stores.idempotency.complete("k", {"n": 1})
    clock.advance(timedelta(hours=1, seconds=1))
    again = stores.idempotency.claim("k", ttl=timedelta(hours=1))
    assert again.acquired
    assert not again.taken_over


def test_a_crashed_holder_is_taken_over_after_the_in_progress_expiry(
    stores: StateStores, clock: FakeClock
) -> None:
    stores.idempotency.claim("k", ttl=timedelta(days=1))
    clock.advance(EXPIRY - timedelta(seconds=1))
    assert stores.idempotency.claim("k", ttl=timedelta(days=1)).in_progress
    clock.advance(timedelta(seconds=1))
    takeover = stores.idempotency.claim("k", ttl=timedelta(days=1))
    assert takeover.acquired
    assert takeover.taken_over
    # AND the new holder's claim is fresh again for others
    assert stores.idempotency.claim("k", ttl=timedelta(days=1)).age == timedelta(0)


def test_release_lets_a_retry_claim_at_once_but_never_undoes_completed_work(stores: StateStores) -> None:
    stores.idempotency.claim("failing", ttl=timedelta(days=1))
    stores.idempotency.release("failing")
    assert stores.idempotency.claim("failing", ttl=timedelta(days=1)).acquired
    stores.idempotency.complete("failing", {"ok": True})
    stores.idempotency.release("failing")
    assert stores.idempotency.claim("failing", ttl=timedelta(days=1)).completed
    stores.idempotency.release("never-claimed")  # absent: nothing to do


def test_concurrent_claims_let_exactly_one_caller_through(stores: StateStores) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[ClaimStatus] = []
    lock = threading.Lock()

    def contend() -> None:
        barrier.wait()
        claim = stores.idempotency.claim("race", ttl=timedelta(days=1))
        with lock:
            outcomes.append(claim.status)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [ClaimStatus.ACQUIRED] + [ClaimStatus.IN_PROGRESS] * 5


def test_keys_with_table_forbidden_characters_work(stores: StateStores) -> None:
    key = "graph:/groups/abc#delta?x=1 \\ ü 'quote' %20"
    assert stores.idempotency.claim(key, ttl=timedelta(days=1)).acquired
    stores.idempotency.complete(key, {"k": key})
    assert stores.idempotency.claim(key, ttl=timedelta(days=1)).result == {"k": key}
    assert stores.idempotency.claim(key + "/other", ttl=timedelta(days=1)).acquired


def test_bad_idempotency_input_is_refused(stores: StateStores) -> None:
    with pytest.raises(InvalidPayloadError, match="key"):
        stores.idempotency.claim("", ttl=timedelta(days=1))
    with pytest.raises(InvalidPayloadError, match="ttl"):
        stores.idempotency.claim("k", ttl=timedelta(0))
    with pytest.raises(InvalidPayloadError, match="result"):
        stores.idempotency.complete("k", {"blob": "x" * 20_000})


# --- key-value state ---------------------------------------------------------------------------


def test_values_round_trip_with_an_etag(stores: StateStores) -> None:
    assert stores.kv.get("delta", "group/abc") is None
    etag = stores.kv.put("delta", "group/abc", {"deltaLink": "https://graph/...?$deltatoken=x", "n": [1, 2]})
    stored = stores.kv.get("delta", "group/abc")
    assert stored is not None
    assert stored.value == {"deltaLink": "https://graph/...?$deltatoken=x", "n": [1, 2]}
    assert stored.etag == etag


def test_get_many_reads_the_keys_that_exist_with_their_etags(stores: StateStores) -> None:
    # keys with characters Tables forbids, one absent, one repeated, one in another namespace, and
    # more keys than one query takes
    keys = [f"employee-{n}" for n in range(12)] + ["upn-ada/o'hare#1@contoso.com"]
    etags = {key: stores.kv.put("leavers", key, {"n": key}) for key in keys[1:]}
    stores.kv.put("others", keys[0], {"n": "not this one"})
    found = stores.kv.get_many("leavers", [*keys, keys[1]])
    assert set(found) == set(keys[1:])
    assert all(found[key].value == {"n": key} and found[key].etag == etags[key] for key in keys[1:])
    assert stores.kv.get_many("leavers", []) == {}
    assert stores.kv.get_many("leavers", ["absent"]) == {}
    with pytest.raises(InvalidPayloadError):
        stores.kv.get_many("leavers", ["ok", ""])


def test_a_stale_etag_is_a_concurrency_error(stores: StateStores) -> None:
    first = stores.kv.put("wave", "pilot", {"state": "reportOnly"})
    second = stores.kv.put("wave", "pilot", {"state": "enforced"}, if_match=first)
    assert second != first
    with pytest.raises(ConcurrencyError) as caught:
        stores.kv.put("wave", "pilot", {"state": "reportOnly"}, if_match=first)
    assert caught.value.kind == "retryable"
    stored = stores.kv.get("wave", "pilot")
    assert stored is not None
    assert stored.value == {"state": "enforced"}


def test_if_absent_creates_only_once(stores: StateStores) -> None:
    stores.kv.put("watermark", "signins", "2026-12-01T08:00:00Z", if_absent=True)
    with pytest.raises(ConcurrencyError):
        stores.kv.put("watermark", "signins", "2026-12-02T08:00:00Z", if_absent=True)


def test_delete_is_idempotent_and_honours_if_match(stores: StateStores) -> None:
    etag = stores.kv.put("ns", "k", 1)
    newer = stores.kv.put("ns", "k", 2)
    with pytest.raises(ConcurrencyError):
        stores.kv.delete("ns", "k", if_match=etag)
    stores.kv.delete("ns", "k", if_match=newer)
    assert stores.kv.get("ns", "k") is None
    stores.kv.delete("ns", "k")


# --- audit log ---------------------------------------------------------------------------------


def _entry(action: str, **extra: object) -> AuditEntry:
    return AuditEntry(
        actor="waveguard/hr-worker",
        action=action,
        target="user:ada",
        reason="new hire",
        correlation_id="msg-1",
        details={"wave": "pilot", **extra},
    )


def test_audit_entries_list_newest_first_and_filter_by_time(stores: StateStores, clock: FakeClock) -> None:
    first = stores.audit.append(_entry("group.add"))
    clock.advance(timedelta(seconds=1))
    second = stores.audit.append(_entry("tap.issue"))
    clock.advance(timedelta(days=1, hours=3))
    third = stores.audit.append(_entry("mail.send", attempt=1))

    assert [e.action for e in stores.audit.list()] == ["mail.send", "tap.issue", "group.add"]
    assert [e.action for e in stores.audit.list(limit=2)] == ["mail.send", "tap.issue"]
    assert [e.action for e in stores.audit.list(since=second.at)] == ["mail.send", "tap.issue"]
    assert [e.action for e in stores.audit.list(since=T0 + timedelta(days=1))] == ["mail.send"]
    assert stores.audit.list()[0] == third
    assert first.at == T0
    assert first.id
    assert third.details == {"wave": "pilot", "attempt": 1}


def test_the_audit_log_is_append_only(stores: StateStores) -> None:
    entry = stores.audit.append(_entry("group.add"))
    with pytest.raises(PermanentError, match="append-only"):
        stores.audit.append(entry)
    assert len(stores.audit.list()) == 1


def test_audit_input_is_checked(stores: StateStores) -> None:
    with pytest.raises(InvalidPayloadError, match="actor"):
        stores.audit.append(AuditEntry(actor="", action="a", target="t", reason="r"))
    with pytest.raises(InvalidPayloadError, match="limit"):
        stores.audit.list(limit=0)


def test_append_once_writes_a_days_entries_together_and_never_twice(
    stores: StateStores, clock: FakeClock
) -> None:
    # GIVEN the entries one piece of work records, with ids and times derived from the work
    late = T0.replace(hour=23, minute=59, second=59)
    entries = [
        AuditEntry("onboarding", "wave.member.add", "u-1", "r", correlation_id="e-1", id="e-1.add", at=T0),
        AuditEntry("onboarding", "tap.create", "u-1", "r", id="e-1.tap", at=T0 + timedelta(seconds=1)),
        AuditEntry("onboarding", "tap.deliver", "u-1", "r", id="e-1.mail", at=late + timedelta(seconds=2)),
    ]
    # WHEN they are written, then again by a retry that also took two steps more
    stored = stores.audit.append_once(entries)
    more = [
        AuditEntry("onboarding", "tap.delete", "u-1", "r", id="e-1.del", at=late + timedelta(seconds=3)),
        AuditEntry("onboarding", "hire.cancel", "e-1", "r", id="e-1.cancel", at=T0 + timedelta(seconds=5)),
    ]
    stores.audit.append_once([*entries, *more])
    stores.audit.append_once(entries)
    # THEN each is stored once, across the two days they fall on, with its own time
    listed = stores.audit.list()
    assert [(e.action, e.id) for e in listed] == [
        ("tap.delete", "e-1.del"),
        ("tap.deliver", "e-1.mail"),
        ("hire.cancel", "e-1.cancel"),
        ("tap.create", "e-1.tap"),
        ("wave.member.add", "e-1.add"),
    ]
    assert listed[1].at == late + timedelta(seconds=2)
    assert [e.at for e in stored] == [e.at for e in entries]


def test_append_once_input_is_checked(stores: StateStores) -> None:
    with pytest.raises(InvalidPayloadError, match="entries"):
        stores.audit.append_once([AuditEntry("a", "b", "t", "r", at=T0)])  # no id
    with pytest.raises(InvalidPayloadError, match="entries"):
        stores.audit.append_once([AuditEntry("a", "b", "t", "r", id="x")])  # no time
    twice = AuditEntry("a", "b", "t", "r", id="x", at=T0)
    with pytest.raises(InvalidPayloadError, match="share an id"):
        stores.audit.append_once([twice, twice])
    with pytest.raises(InvalidPayloadError, match="at most 100"):
        stores.audit.append_once([AuditEntry("a", "b", "t", "r", id=f"x{n}", at=T0) for n in range(101)])
    with pytest.raises(InvalidPayloadError, match="actor"):
        stores.audit.append_once([AuditEntry("", "b", "t", "r", id="y", at=T0)])
    assert stores.audit.list() == []


def test_values_lists_one_namespace(stores: StateStores) -> None:
    stores.kv.put("poison", "a", {"n": 1})
    stores.kv.put("poison", "b/with#odd?chars", {"n": 2})
    stores.kv.put("other", "a", {"n": 3})
    assert sorted(v["n"] for v in stores.kv.values("poison")) == [1, 2]
    assert len(stores.kv.values("poison", limit=1)) == 1
    assert stores.kv.values("empty") == []


def test_items_reads_a_key_range_in_key_order(stores: StateStores) -> None:
    # GIVEN daily rows written out of order, over a year boundary, next to another namespace
    days = ["2027-01-02", "2026-12-31", "2025-06-30", "2027-01-01", "2026-01-15"]
    for n, day in enumerate(days):
        stores.kv.put("report-snapshots-pilot", day, {"day": day, "n": n})
    stores.kv.put("report-snapshots-pilot2", "2026-12-31", {"day": "other"})
    # THEN a range is read in date order, start inclusive, stop exclusive, from the store
    assert [k for k, _ in stores.kv.items("report-snapshots-pilot")] == sorted(days)
    newest = stores.kv.items("report-snapshots-pilot", start="2026-12-31")
    assert newest == [
        ("2026-12-31", {"day": "2026-12-31", "n": 1}),
        ("2027-01-01", {"day": "2027-01-01", "n": 3}),
        ("2027-01-02", {"day": "2027-01-02", "n": 0}),
    ]
    old = stores.kv.items("report-snapshots-pilot", stop="2026-12-31", limit=1)
    assert old == [("2025-06-30", {"day": "2025-06-30", "n": 2})]
    assert stores.kv.items("report-snapshots-pilot", start="2027-01-01", stop="2027-01-02") == [
        ("2027-01-01", {"day": "2027-01-01", "n": 3})
    ]
    assert stores.kv.items("report-snapshots-empty") == []
    # AND a key that had to be escaped comes back as it was written
    stores.kv.put("odd", "b/with#odd?chars ü", {"n": 1})
    assert stores.kv.items("odd") == [("b/with#odd?chars ü", {"n": 1})]
    with pytest.raises(InvalidPayloadError, match="limit"):
        stores.kv.items("odd", limit=0)


def test_list_actions_is_selected_by_the_store_so_other_entries_never_crowd_it_out(
    stores: StateStores, clock: FakeClock
) -> None:
    def append(action: str, target: str) -> None:
        stores.audit.append(AuditEntry("timer", action, target, "r"))
        clock.advance(timedelta(seconds=1))

    append("wave.transition", "pilot")
    append("wave.approve", "pilot")
    append("wave.transition", "second")
    window = clock.now
    append("wave.transition", "pilot")
    # GIVEN more other entries than one listing returns
    for n in range(30):
        append("permfa.migrate", f"wave:pilot:{n}")
    assert all(e.action == "permfa.migrate" for e in stores.audit.list(limit=30))
    # THEN the wanted actions are all found, newest first
    found = stores.audit.list_actions(["wave.transition", "wave.approve"], limit=30)
    assert [(e.action, e.target) for e in found] == [
        ("wave.transition", "pilot"),
        ("wave.transition", "second"),
        ("wave.approve", "pilot"),
        ("wave.transition", "pilot"),
    ]
    # AND narrowed by target, by time and by count
    pilot = stores.audit.list_actions(["wave.transition"], target="pilot")
    assert [e.target for e in pilot] == ["pilot", "pilot"]
    assert len(stores.audit.list_actions(["wave.transition", "wave.approve"], since=window)) == 1
    assert len(stores.audit.list_actions(["wave.transition"], limit=1)) == 1
    assert stores.audit.list_actions(["wave.nothing"]) == []
    with pytest.raises(InvalidPayloadError, match="actions"):
        stores.audit.list_actions([])


@given(st.dates(min_value=date(1000, 1, 1)), st.dates(min_value=date(1000, 1, 1)))
def test_table_keys_of_iso_dates_are_the_dates_so_key_order_is_date_order(first: date, second: date) -> None:
    a, b = table_key(first.isoformat()), table_key(second.isoformat())
    assert (a, b) == (first.isoformat(), second.isoformat())
    assert (a < b) == (first < second)


@given(st.text(min_size=1, max_size=256))
def test_an_escaped_key_reads_back_as_written(key: str) -> None:
    row = table_key(key)
    assert key_of_table_key(row) == (None if is_hashed_key(row) else key)

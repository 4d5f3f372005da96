"""Key-value state (watermarks, delta links, wave state): JSON values with ETags."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Final

from shared.errors import InvalidPayloadError
from shared.state.errors import ConcurrencyError, WriteConflict
from shared.state.ports import Versioned

__all__ = ["MAX_KEYS_PER_READ", "MAX_NAME_LENGTH", "MAX_VALUE_CHARS", "KeyValueStore"]

MAX_NAME_LENGTH: Final = 256
# Azure Tables allows 15 comparisons in one filter: the partition and up to 10 keys fit.
MAX_KEYS_PER_READ: Final = 10
# One table string property holds 32K UTF-16 characters; leave room for escaping.
MAX_VALUE_CHARS: Final = 30_000


class KeyValueStore(ABC):
    """JSON values by (namespace, key); conditional writes raise ``ConcurrencyError``.

    Backends implement three small methods over JSON text; a lost condition raises
    ``WriteConflict``.
    """

    def get(self, namespace: str, key: str) -> Versioned | None:
        """The value and its ETag, or None when absent.

        Raises:
            InvalidPayloadError: namespace or key is empty or too long.
            RetryableError: the store is unavailable.
        """
        _check_names(namespace, key)
        stored = self._read(namespace, key)
        if stored is None:
            return None
        text, etag = stored
        return Versioned(json.loads(text), etag)

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Versioned]:
        """The values (with ETags) of those ``keys`` that exist, read together where the backend
        can (one query for up to ``MAX_KEYS_PER_READ`` keys in Azure Tables).

        Raises:
            InvalidPayloadError: the namespace or a key is empty or too long.
            RetryableError: the store is unavailable.
        """
        unique = list(dict.fromkeys(keys))
        for key in unique:
            _check_names(namespace, key)
        found: dict[str, Versioned] = {}
        for start in range(0, len(unique), MAX_KEYS_PER_READ):
            chunk = unique[start : start + MAX_KEYS_PER_READ]
            for key, (text, etag) in self._read_many(namespace, chunk).items():
                found[key] = Versioned(json.loads(text), etag)
        return found

    def put(
        self, namespace: str, key: str, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Store ``value`` (JSON); returns the new ETag.

        ``if_match`` writes only over that version; ``if_absent`` only creates. Neither: last
        writer wins.

        Raises:
            ConcurrencyError: the condition failed (someone else wrote first); re-read and retry.
            InvalidPayloadError: bad names, a value that is not JSON or is too large, or both conditions.
            RetryableError: the store is unavailable.
        """
        _check_names(namespace, key)
        if if_match is not None and if_absent:
            raise InvalidPayloadError.for_field("if_match", "give if_match or if_absent, not both")
        text = _encode(value)
        try:
            return self._write(namespace, key, text, if_match=if_match, if_absent=if_absent)
        except WriteConflict:
            expected = "to be absent" if if_absent else f"version {if_match}"
            raise ConcurrencyError(
                f"state {namespace}/{key} changed concurrently (expected {expected})",
                namespace=namespace,
                key=key,
            ) from None

    def delete(self, namespace: str, key: str, *, if_match: str | None = None) -> None:
        """Remove the value; absent is fine.

        Raises:
            ConcurrencyError: ``if_match`` was given and the value changed since.
            RetryableError: the store is unavailable.
        """
        _check_names(namespace, key)
        try:
            self._delete(namespace, key, if_match=if_match)
        except WriteConflict:
            raise ConcurrencyError(
                f"state {namespace}/{key} changed concurrently (expected version {if_match})",
                namespace=namespace,
                key=key,
            ) from None

    def values(self, namespace: str, *, limit: int = 1000) -> list[Any]:
        """Up to ``limit`` values stored in ``namespace`` (in no promised order).

        Raises:
            InvalidPayloadError: the namespace is empty or too long.
            RetryableError: the store is unavailable.
        """
        _check_names(namespace, "-")
        return [json.loads(text) for text in self._texts(namespace, max(1, limit))]

    def items(
        self, namespace: str, *, start: str | None = None, stop: str | None = None, limit: int = 1000
    ) -> list[tuple[str, Any]]:
        """Up to ``limit`` (key, value) pairs of ``namespace`` with ``start <= key < stop`` (either
        bound may be left out), in key order; the store selects them (Azure Tables: a RowKey range
        query on the namespace's partition), so only what is returned is read.

        Order and bounds are those of the stored (``table_key``-escaped) keys: the keys' own order for
        keys of letters, digits and ``- _ . : @ = + , ; ! $ & * ( )`` (ISO dates, ids). A key longer
        than 1 KiB once escaped is stored hashed: it is never in a range.

        Raises:
            InvalidPayloadError: the namespace or a bound is empty or too long, or ``limit`` < 1.
            RetryableError: the store is unavailable.
        """
        _check_names(namespace, "-")
        for bound in (start, stop):
            if bound is not None:
                _check_names(namespace, bound)
        if limit < 1:
            raise InvalidPayloadError.for_field("limit", "expected 1 or more")
        return [(key, json.loads(text)) for key, text in self._items(namespace, start, stop, limit)]

    @abstractmethod
    def _items(
        self, namespace: str, start: str | None, stop: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, JSON text) of up to ``limit`` keys with ``table_key(start) <= table_key(key) <
        table_key(stop)``, ordered by ``table_key(key)``; hashed keys left out."""

    @abstractmethod
    def _texts(self, namespace: str, limit: int) -> list[str]:
        """The JSON texts of up to ``limit`` values in ``namespace``."""

    @abstractmethod
    def _read(self, namespace: str, key: str) -> tuple[str, str] | None:
        """(JSON text, etag) or None."""

    def _read_many(self, namespace: str, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(JSON text, etag) of those keys that exist; one ``_read`` each unless overridden."""
        found: dict[str, tuple[str, str]] = {}
        for key in keys:
            stored = self._read(namespace, key)
            if stored is not None:
                found[key] = stored
        return found

    @abstractmethod
    def _write(self, namespace: str, key: str, text: str, *, if_match: str | None, if_absent: bool) -> str:
        """Store the text under the condition; return the new etag; WriteConflict if it fails."""

    @abstractmethod
    def _delete(self, namespace: str, key: str, *, if_match: str | None) -> None:
        """Delete under the condition (absent is fine); WriteConflict if the etag differs."""


def _check_names(namespace: str, key: str) -> None:
    for field, value in (("namespace", namespace), ("key", key)):
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
            raise InvalidPayloadError.for_field(field, f"expected 1 to {MAX_NAME_LENGTH} characters")


def _encode(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError.for_field("value", f"not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidPayloadError.for_field(
            "value", f"{len(text)} characters; the limit is {MAX_VALUE_CHARS}"
        )
    return text

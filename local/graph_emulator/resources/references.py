"""Directory object references: the URLs in ``@odata.id`` and ``members@odata.bind``."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from local.graph_emulator.errors import JsonObject, bad_request, not_found
from local.graph_emulator.store import TenantStore

MAX_LINK_CHANGES = 20
GRAPH_HOSTS = frozenset({"graph.microsoft.com"})
REFERENCE_COLLECTIONS = frozenset({"directoryobjects", "users", "groups"})


def reference_url(origin: str, object_id: str) -> str:
    """The canonical ``@odata.id`` of a directory object, on this emulator."""
    return f"{origin}/v1.0/directoryObjects/{object_id}"


def resolve_reference(url: Any, store: TenantStore, *, origin: str) -> str:
    """The object id a reference URL points to.

    Accepts ``https://graph.microsoft.com/v1.0/{directoryObjects|users|groups}/{id}`` and the same
    paths on this emulator's own base URL.

    Raises:
        GraphError: the value is not such a URL (400) or names no object (404).
    """
    if not isinstance(url, str):
        raise bad_request(f"Invalid object identifier '{url}'.")
    parts = urlsplit(url)
    own_host = urlsplit(origin).netloc
    segments = [unquote(s) for s in parts.path.split("/") if s]
    valid_host = parts.scheme in ("http", "https") and (
        parts.netloc in GRAPH_HOSTS or parts.netloc == own_host
    )
    if not valid_host or len(segments) != 3 or segments[1].lower() not in REFERENCE_COLLECTIONS:
        raise bad_request(f"Invalid object identifier '{url}'.")
    collection, key = segments[1].lower(), segments[2]
    if collection == "users":
        user = store.find_user(key)
        if user is None:
            raise not_found(key)
        return str(user["id"])
    found: JsonObject | None = (
        store.groups.get(key) if collection == "groups" else store.directory_object(key)
    )
    if found is None:
        raise not_found(key)
    return key


def resolve_bind_list(body: JsonObject, name: str, store: TenantStore, *, origin: str) -> list[str]:
    """The object ids of a ``<relation>@odata.bind`` list (empty when absent).

    Raises:
        GraphError: not a list of URLs, more than 20 of them, or one that resolves to nothing.
    """
    if name not in body:
        return []
    urls = body[name]
    if not isinstance(urls, list):
        raise bad_request(f"Invalid value specified for property '{name}': expected an array of URLs.")
    if len(urls) > MAX_LINK_CHANGES:
        raise bad_request(
            f"A resource cannot contain more than {MAX_LINK_CHANGES} link changes ('{name}' has {len(urls)})."
        )
    return [resolve_reference(url, store, origin=origin) for url in urls]

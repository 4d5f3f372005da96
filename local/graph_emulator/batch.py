"""POST /$batch: up to 20 requests, each dispatched through the router and answered on its own.

Items run under the batch's own API version (``POST /beta/$batch`` runs them under ``/beta``).
Each item is checked against the app's permissions (a refused item is a 403 inside the 200 batch
answer; the batch itself needs none), faulted, throttled (writes take a write-budget token each)
and logged like a request of its own, so a 200 batch can hold 429 items with their own
``Retry-After``. ``dependsOn`` orders
items; an item whose dependency failed (status >= 400) is answered 424 without running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.graph_emulator import permissions
from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.routing import (
    JSON_CONTENT_TYPE,
    Call,
    Request,
    Response,
    RouteTable,
    request_version,
)

routes = RouteTable()

MAX_BATCH_REQUESTS = 20
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


@dataclass
class BatchItem:
    id: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    depends_on: list[str] = field(default_factory=list)


@routes.post("/$batch")
def run_batch(call: Call) -> Response:
    items = parse_batch(call.request.json_object())
    results: dict[str, Response] = {}
    for item in execution_order(items):
        item_request = to_request(item, call.request)
        failed = [dep for dep in item.depends_on if results[dep].status >= 400]
        if item_request.path.rstrip("/").lower().endswith("/$batch"):
            nested = bad_request("A batch request cannot contain another batch request.", code="BadRequest")
            results[item.id] = call.emulator.reject(item_request, nested)
        elif failed:
            error = GraphError(
                424, "FailedDependency", f"The request depends on failed request(s) {', '.join(failed)}."
            )
            results[item.id] = call.emulator.reject(item_request, error)
        else:
            results[item.id] = call.emulator.handle_graph(item_request)
    return Response.json({"responses": [item_response(item.id, results[item.id]) for item in items]})


def parse_batch(body: JsonObject) -> list[BatchItem]:
    """The batch's requests, validated as a whole (a bad batch is one 400, as on Graph).

    Raises:
        GraphError: a malformed, oversized or inconsistent batch (the message names the field).
    """
    raw_items = body.get("requests")
    if not isinstance(raw_items, list) or not raw_items:
        raise bad_request(
            "Invalid batch payload format: 'requests' must be a non-empty array.", code="BadRequest"
        )
    if len(raw_items) > MAX_BATCH_REQUESTS:
        raise bad_request(
            f"Number of requests inside batch exceeds the limit: {len(raw_items)} given, "
            f"at most {MAX_BATCH_REQUESTS} are allowed.",
            code="BadRequest",
        )
    items = [parse_item(raw, index) for index, raw in enumerate(raw_items)]
    ids = [item.id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise bad_request(
            f"Batch request ids must be unique; duplicated: {', '.join(duplicates)}.", code="BadRequest"
        )
    for item in items:
        unknown = [dep for dep in item.depends_on if dep not in ids]
        if unknown:
            raise bad_request(
                f"requests[id={item.id}].dependsOn names unknown request id(s): {', '.join(unknown)}.",
                code="BadRequest",
            )
    return items


def parse_item(raw: Any, index: int) -> BatchItem:
    where = f"requests[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object.", code="BadRequest")
    item_id, method, url = raw.get("id"), raw.get("method"), raw.get("url")
    if not isinstance(item_id, str) or not item_id:
        raise bad_request(f"{where}.id is required and must be a non-empty string.", code="BadRequest")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise bad_request(f"{where}.method must be one of {', '.join(sorted(METHODS))}.", code="BadRequest")
    if not isinstance(url, str) or not url or "://" in url:
        raise bad_request(
            f"{where}.url must be a URL relative to the API version, like '/users/{{id}}'.", code="BadRequest"
        )
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise bad_request(f"{where}.headers must be an object of string values.", code="BadRequest")
    depends_on = raw.get("dependsOn") or []
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise bad_request(f"{where}.dependsOn must be an array of request ids.", code="BadRequest")
    body = raw.get("body")
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        raise bad_request(
            f"Write request id : {item_id} does not contain Content-Type header or body.", code="BadRequest"
        )
    return BatchItem(item_id, method.upper(), url, dict(headers), body, list(depends_on))


def execution_order(items: list[BatchItem]) -> list[BatchItem]:
    """Items with their dependencies first, otherwise in request order.

    Raises:
        GraphError: the dependencies form a cycle.
    """
    done: set[str] = set()
    order: list[BatchItem] = []
    pending = list(items)
    while pending:
        ready = next((item for item in pending if set(item.depends_on) <= done), None)
        if ready is None:
            cycle = ", ".join(item.id for item in pending)
            raise bad_request(
                f"The batch's dependsOn form a cycle among requests {cycle}.", code="BadRequest"
            )
        order.append(ready)
        done.add(ready.id)
        pending.remove(ready)
    return order


def to_request(item: BatchItem, outer: Request) -> Request:
    parts = urlsplit(item.url if item.url.startswith("/") else f"/{item.url}")
    body = b""
    if isinstance(item.body, dict | list):
        body = json.dumps(item.body).encode("utf-8")
    elif isinstance(item.body, str):
        body = item.body.encode("utf-8")
    return Request(
        method=item.method,
        path=f"/{request_version(outer)}{parts.path}",  # items run under the batch's API version
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers=_with_caller(_with_trace(item.headers, outer.traceparent), outer),
        body=body,
        request_id=str(uuid.uuid4()),
        client_request_id=outer.client_request_id,
        origin=outer.origin,
        batch_id=outer.request_id,
        batch_item_id=item.id,
    )


def _with_trace(headers: Mapping[str, str], traceparent: str | None) -> Mapping[str, str]:
    """An item's headers, with the batch's ``traceparent`` unless the item names its own."""
    if traceparent is None or any(name.lower() == "traceparent" for name in headers):
        return headers
    return {**headers, "traceparent": traceparent}


def _with_caller(headers: Mapping[str, str], outer: Request) -> Mapping[str, str]:
    """An item's headers, with the batch's ``x-emulator-caller`` (a tenant admin's batch is theirs)."""
    caller = outer.header(permissions.ADMIN_CALLER_HEADER)
    if caller is None or any(name.lower() == permissions.ADMIN_CALLER_HEADER for name in headers):
        return headers
    return {**headers, permissions.ADMIN_CALLER_HEADER: caller}


def item_response(item_id: str, response: Response) -> JsonObject:
    headers = dict(response.headers)
    answer: JsonObject = {"id": item_id, "status": response.status, "headers": headers}
    if response.body is not None:
        headers["Content-Type"] = response.content_type if response.content_type else JSON_CONTENT_TYPE
        answer["body"] = response.body
    return answer

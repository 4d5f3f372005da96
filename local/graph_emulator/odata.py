"""OData query options for collections: $filter, $select, $top, $count and $skiptoken paging."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from local.graph_emulator.errors import GraphError, JsonObject, bad_request
from local.graph_emulator.odata_filter import FilterRules, parse_filter
from local.graph_emulator.routing import Request, Response, request_version

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
_SAFE_IN_QUERY = "$,'()@"
SUPPORTED_OPTIONS = frozenset({"$filter", "$select", "$top", "$count", "$skiptoken"})


@dataclass(frozen=True)
class ResourceShape:
    """How a resource type is filtered and projected."""

    type_name: str
    properties: frozenset[str]
    default_properties: tuple[str, ...] | None
    filter_rules: FilterRules

    @property
    def odata_type(self) -> str:
        return f"#microsoft.graph.{self.type_name}"


def is_advanced_query(request: Request) -> bool:
    """True when the caller asked for the directory's advanced query capabilities."""
    return (request.header("ConsistencyLevel") or "").strip().lower() == "eventual"


def check_options(request: Request, allowed: Iterable[str] = SUPPORTED_OPTIONS) -> None:
    """Refuse OData system query options the emulator does not implement, naming them."""
    allowed_set = set(allowed)
    for name, _ in request.query:
        if name.startswith("$") and name not in allowed_set:
            raise bad_request(
                f"The query option '{name}' is not supported by this endpoint.", code="BadRequest"
            )


def parse_select(request: Request, shape: ResourceShape) -> list[str] | None:
    """The properties named by $select, or None when absent.

    Raises:
        GraphError: a named property does not exist on the type (Graph's 400 wording).
    """
    raw = request.query_value("$select")
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    lookup = {name.casefold(): name for name in shape.properties}
    selected: list[str] = []
    for name in names:
        canonical = lookup.get(name.casefold())
        if canonical is None:
            raise bad_request(
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.{shape.type_name}'.",
                code="BadRequest",
            )
        if canonical not in selected:
            selected.append(canonical)
    return selected


def project(obj: JsonObject, shape: ResourceShape, select: Sequence[str] | None) -> JsonObject:
    """The object as Graph returns it: the selected properties, else the type's default set."""
    names = select if select is not None else shape.default_properties
    if names is None:
        return {key: value for key, value in obj.items() if key in shape.properties}
    return {name: obj.get(name) for name in names}


def parse_top(
    request: Request,
    *,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
    code: str = "Request_BadRequest",
) -> int:
    """The page size: $top if given (1..``maximum``, 999 for the directory), else ``default`` (100)."""
    raw = request.query_value("$top")
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not 1 <= top <= maximum:
        raise bad_request(
            f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.", code=code
        )
    return top


def wants_count(request: Request) -> bool:
    """True for $count=true; the directory demands ConsistencyLevel: eventual for it."""
    raw = request.query_value("$count")
    if raw is None or raw.lower() == "false":
        return False
    if raw.lower() != "true":
        raise bad_request(f"Invalid value '{raw}' for $count: use true or false.", code="BadRequest")
    if not is_advanced_query(request):
        raise bad_request("$count is not currently supported.")
    return True


def encode_skiptoken(offset: int) -> str:
    raw = json.dumps({"offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    """The offset a $skiptoken stands for.

    Raises:
        GraphError: the token was not issued by this emulator.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request(f"Invalid $skiptoken value '{token}'.") from None
    if not isinstance(offset, int) or offset < 0:
        raise bad_request(f"Invalid $skiptoken value '{token}'.")
    return offset


def next_link(request: Request, offset: int) -> str:
    """The absolute URL of the next page, keeping every other query option of this request."""
    pairs = [(name, value) for name, value in request.query if name != "$skiptoken"]
    pairs.append(("$skiptoken", encode_skiptoken(offset)))
    query = "&".join(f"{quote(name, safe='$')}={quote(value, safe=_SAFE_IN_QUERY)}" for name, value in pairs)
    return f"{request.origin}{request.path}?{query}"


def context_url(request: Request, fragment: str) -> str:
    """The ``@odata.context`` URL, under the request's API version (``/v1.0`` or ``/beta``)."""
    return f"{request.origin}/{request_version(request)}/$metadata#{fragment}"


def list_collection(
    request: Request,
    items: Iterable[JsonObject],
    shape: ResourceShape,
    *,
    context: str,
    item_shape: Callable[[JsonObject], ResourceShape] | None = None,
) -> Response:
    """Answer a collection GET: filter, count, page and project ``items`` as Graph does.

    ``item_shape`` picks each item's own type in a directoryObject collection (users and groups
    mixed); those items carry ``@odata.type``, as on Graph.
    """
    check_options(request)
    select = parse_select(request, shape)
    top = parse_top(request)
    count = wants_count(request)
    raw_filter = request.query_value("$filter")
    # unfiltered, a lazy sequence builds only the page asked for (O(page), not O(group))
    lazy = raw_filter is None and isinstance(items, Sequence)
    matching: Sequence[JsonObject] = items if lazy else list(items)  # type: ignore[assignment]
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, shape.filter_rules, advanced=is_advanced_query(request))
        matching = [item for item in matching if predicate(item)]
    skiptoken = request.query_value("$skiptoken")
    offset = decode_skiptoken(skiptoken) if skiptoken is not None else 0
    page = matching[offset : offset + top]
    body: JsonObject = {"@odata.context": context_url(request, _context_fragment(context, select))}
    if count:
        body["@odata.count"] = len(matching)
    if offset + top < len(matching):
        body["@odata.nextLink"] = next_link(request, offset + top)
    body["value"] = [_project_item(item, shape, select, item_shape) for item in page]
    return Response.json(body)


def count_collection(request: Request, items: Iterable[JsonObject], shape: ResourceShape) -> Response:
    """Answer a ``/$count`` GET: the number of ``items`` matching an optional $filter, as text."""
    require_count_header(request)
    check_options(request, allowed={"$filter"})
    matching = list(items)
    raw_filter = request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, shape.filter_rules, advanced=is_advanced_query(request))
        matching = [item for item in matching if predicate(item)]
    return Response.text(str(len(matching)))


def single_entity(request: Request, obj: JsonObject, shape: ResourceShape, *, context: str) -> Response:
    """Answer a single-entity GET with $select applied."""
    check_options(request, allowed={"$select"})
    select = parse_select(request, shape)
    body: JsonObject = {
        "@odata.context": context_url(request, _context_fragment(context, select) + "/$entity")
    }
    body.update(project(obj, shape, select))
    return Response.json(body)


def _context_fragment(context: str, select: Sequence[str] | None) -> str:
    return f"{context}({','.join(select)})" if select else context


def _project_item(
    item: JsonObject,
    shape: ResourceShape,
    select: Sequence[str] | None,
    item_shape: Callable[[JsonObject], ResourceShape] | None,
) -> JsonObject:
    if item_shape is None:
        return project(item, shape, select)
    own = item_shape(item)
    own_select = [name for name in select if name in own.properties] if select is not None else None
    return {"@odata.type": own.odata_type, **project(item, own, own_select)}


def require_count_header(request: Request) -> None:
    """/$count segments need the same header as $count=true."""
    if not is_advanced_query(request):
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")

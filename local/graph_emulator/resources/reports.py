"""Paged, filtered collections for the report-style APIs (registration details, sign-in logs).

Those APIs take ``$filter``, ``$top`` and follow ``@odata.nextLink`` like the directory, but need no
``ConsistencyLevel`` header and project nothing by default: each item is returned whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.odata import check_options, context_url, decode_skiptoken, next_link, parse_top
from local.graph_emulator.odata_filter import FilterRules, parse_filter
from local.graph_emulator.routing import Request, Response

REPORT_OPTIONS = frozenset({"$filter", "$top", "$skiptoken"})


def list_report(
    request: Request,
    items: Iterable[JsonObject],
    rules: FilterRules,
    *,
    context: str,
    odata_type: str,
    ranges: bool = False,
    filter_view: Callable[[JsonObject], JsonObject] | None = None,
) -> Response:
    """One page of ``items`` matching ``$filter``; ``ranges`` allows ge/le/gt/lt without the header.

    ``filter_view`` adds the keys a filter may name beyond top-level ones (``status/errorCode``).

    Raises:
        GraphError: an unsupported option, filter, page size or skiptoken (400).
    """
    check_options(request, allowed=REPORT_OPTIONS)
    top = parse_top(request)
    matching = list(items)
    raw_filter = request.query_value("$filter")
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, rules, advanced=ranges)
        view = filter_view or (lambda item: item)
        matching = [item for item in matching if predicate(view(item))]
    skiptoken = request.query_value("$skiptoken")
    offset = decode_skiptoken(skiptoken) if skiptoken is not None else 0
    body: JsonObject = {"@odata.context": context_url(request, context)}
    if offset + top < len(matching):
        body["@odata.nextLink"] = next_link(request, offset + top)
    body["value"] = [{"@odata.type": odata_type, **item} for item in matching[offset : offset + top]]
    return Response.json(body)

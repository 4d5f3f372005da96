"""RFC 9457 problem details: the one shape every WaveGuard HTTP error response takes.

::

    HTTP/1.1 400 Bad Request
    Content-Type: application/problem+json

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "invalid HR event: data.country: expected an ISO 3166-1 alpha-2 country code",
     "errors": [{"field": "data.country", "message": "expected an ISO 3166-1 ..."}]}

``errors`` is our extension member (RFC 9457 §3.2) listing every bad field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Final

from shared.errors import FieldError

__all__ = ["PROBLEM_CONTENT_TYPE", "problem", "problem_json"]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: Iterable[FieldError] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """A problem document for ``status``; ``title`` defaults to the status phrase.

    ``detail`` and ``errors`` are returned to the caller: never put secrets or personal data in them.
    """
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e["field"], "message": e["message"]} for e in errors]
    body.update(extensions)
    return body


def problem_json(status: int, detail: str, **kwargs: Any) -> str:
    """``problem(...)`` serialised as compact JSON."""
    return json.dumps(problem(status, detail, **kwargs), separators=(",", ":"))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"

"""Graph's OData error shape and the exception every emulator layer raises to produce it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

# Graph's own wording, reused wherever the service uses it.
NOT_FOUND_MESSAGE = (
    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
)
ALREADY_MEMBER_MESSAGE = (
    "One or more added object references already exist for the following modified properties: 'members'."
)

# The code Graph sends for a status when a fault rule names none.
DEFAULT_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    409: "Conflict",
    423: "Locked",
    424: "FailedDependency",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class GraphError(Exception):
    """An error answered to the client as Graph's OData error body."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(object_id: str) -> GraphError:
    """Graph's 404 for a directory object that does not exist."""
    return GraphError(404, "Request_ResourceNotFound", NOT_FOUND_MESSAGE.format(id=object_id))


def bad_request(message: str, *, code: str = "Request_BadRequest") -> GraphError:
    """A 400 with the directory's usual error code unless another is given."""
    return GraphError(400, code, message)


def graph_timestamp(now: datetime | None = None) -> str:
    """The innerError date as Graph writes it: UTC, seconds, no zone suffix."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S")


def error_body(code: str, message: str, *, request_id: str, client_request_id: str) -> JsonObject:
    """The JSON body Graph answers an error with."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_timestamp(),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }

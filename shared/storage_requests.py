"""Requests WaveGuard writes itself and sends through a storage SDK client's own pipeline, and the
azure-core errors their answers become (``shared.state.table_batch``, ``shared.queue_post``).

The pipeline is the client's: its credential, retries, API version and tracing. Only the body is
WaveGuard's, and only the status, headers and raw answer come back (no SDK deserializer runs).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

__all__ = ["send_through", "service_error"]

# The service's error code and message, in a JSON (Tables) or XML (queues, any service) body.
_ERROR_CODE: Final = re.compile(rb'"code"\s*:\s*"([^"]+)"|<[Cc]ode>([^<]+)</[Cc]ode>')
_ERROR_MESSAGE: Final = re.compile(rb'"value"\s*:\s*"([^"]*)"|<[Mm]essage>([^<]*)</[Mm]essage>')


def send_through(client: Any, request: HttpRequest) -> tuple[int, str | None, bytes]:
    """Send ``request`` through ``client``'s generated client (a ``TableClient`` or
    ``QueueClient``): the status, the ``x-ms-error-code`` header and the raw answer.

    Raises:
        azure.core.exceptions.AzureError: the request could not be sent or answered.
    """
    # stream=True keeps the generated client's deserializer off the answer.
    response = client._client.send_request(request, stream=True)
    answer = response.read()
    return response.status_code, response.headers.get("x-ms-error-code"), answer


def service_error(status: int, body: bytes, what: str, *, code: str | None = None) -> HttpResponseError:
    """azure-core's error for a refused request, with the service's status and error code (the
    ``x-ms-error-code`` header when given, else the JSON or XML body's), as ``storage_errors``
    and ``storage_error`` read them."""
    from azure.core.exceptions import HttpResponseError

    code_match, message_match = _ERROR_CODE.search(body), _ERROR_MESSAGE.search(body)
    if code is None and code_match:
        code = (code_match.group(1) or code_match.group(2)).decode("utf-8", "replace")
    raw = (message_match.group(1) or message_match.group(2) or b"") if message_match else b""
    detail = raw.decode("utf-8", "replace").replace("\\n", "\n").splitlines()[0] if raw else ""
    error = HttpResponseError(message=f"{what}: HTTP {status} {code or ''} {detail}".strip())
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error

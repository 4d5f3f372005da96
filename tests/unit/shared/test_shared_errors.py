"""Error hierarchy and classification of our own and foreign exceptions."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from kiota_abstractions.api_error import APIError

from shared.errors import (
    ConfigError,
    InvalidPayloadError,
    NotFoundError,
    PermanentError,
    RetryableError,
    SafetyViolationError,
    WaveGuardError,
    classify,
    storage_error,
)


class _FakeAzureResponse:
    """The little of an azure-core HTTP response that HttpResponseError reads."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers: dict[str, str] = {}
        self.request = None

    def text(self) -> str:
        return ""


def test_our_errors_carry_their_kind_and_keyword_context() -> None:
    # GIVEN errors raised with context
    throttled = RetryableError("Graph throttled", retry_after=2.5, correlation_id="msg-1", status=429)
    bad = InvalidPayloadError.for_field("data.employeeId", "is required", correlation_id="msg-2")

    # THEN the kind decides retry vs settle, and the context is kept for logs and alerts
    assert classify(throttled) == "retryable"
    assert classify(bad) == "permanent"
    assert throttled.to_dict() == {
        "error": "RetryableError",
        "kind": "retryable",
        "message": "Graph throttled",
        "correlationId": "msg-1",
        "status": 429,
        "retryAfter": 2.5,
    }
    assert bad.errors == [{"field": "data.employeeId", "message": "is required"}]
    assert bad.field == "data.employeeId"
    assert str(bad) == "data.employeeId: is required"


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("config/waveguard.yaml: waves: bad", file="config/waveguard.yaml"),
        NotFoundError("user not found"),
        SafetyViolationError("break-glass would be targeted", rule="break-glass-never-targeted"),
        InvalidPayloadError("bad"),
    ],
)
def test_every_permanent_leaf_is_a_permanent_waveguard_error(error: WaveGuardError) -> None:
    assert isinstance(error, PermanentError)
    assert classify(error) == "permanent"


def test_context_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryableError("x", 2.0)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, "retryable"),
        (429, "retryable"),
        (500, "retryable"),
        (503, "retryable"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (409, "permanent"),
    ],
)
def test_kiota_and_msgraph_api_errors_are_classified_by_status(status: int, expected: str) -> None:
    # GIVEN an APIError (msgraph's ODataError derives from it) with a response status
    exc = APIError("boom", response_status_code=status)
    assert classify(exc) == expected


@pytest.mark.parametrize(("status", "expected"), [(503, "retryable"), (429, "retryable"), (403, "permanent")])
def test_azure_core_http_errors_are_classified_by_status(status: int, expected: str) -> None:
    exc = HttpResponseError(message="storage said no", response=_FakeAzureResponse(status))
    assert exc.status_code == status
    assert classify(exc) == expected


def test_azure_not_found_is_permanent_and_connection_failures_are_retryable() -> None:
    assert classify(ResourceNotFoundError(message="gone", response=_FakeAzureResponse(404))) == "permanent"
    assert classify(ServiceRequestError("connection refused")) == "retryable"


def test_httpx_timeouts_transport_failures_and_status_errors() -> None:
    request = httpx.Request("GET", "https://graph.microsoft.com/v1.0/users")
    assert classify(httpx.ReadTimeout("slow", request=request)) == "retryable"
    assert classify(httpx.ConnectError("refused", request=request)) == "retryable"
    gone = httpx.HTTPStatusError("404", request=request, response=httpx.Response(404, request=request))
    assert classify(gone) == "permanent"


def test_unknown_exceptions_are_retryable_so_the_poison_queue_catches_them() -> None:
    assert classify(KeyError("surprise")) == "retryable"
    assert classify(TimeoutError()) == "retryable"


@pytest.mark.parametrize("code", ["QueueNotFound", "TableNotFound"])
def test_a_vanished_queue_or_table_is_a_storage_outage_to_retry(code: str) -> None:
    # GIVEN storage answers 404 because the queue or table itself is gone (deleted, account restarted)
    exc = ResourceNotFoundError("gone")
    exc.status_code = 404
    exc.error_code = code
    # THEN it is retryable (the stores create it again), not a refusal
    assert isinstance(storage_error(exc, operation="send"), RetryableError)


def test_an_other_storage_404_stays_permanent() -> None:
    exc = ResourceNotFoundError("no such thing")
    exc.status_code = 404
    exc.error_code = "ResourceNotFound"
    assert isinstance(storage_error(exc, operation="read"), PermanentError)

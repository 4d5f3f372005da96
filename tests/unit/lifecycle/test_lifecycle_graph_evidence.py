"""Gate evidence over httpx.MockTransport: one paged read per report, results of the twin policy only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.config import load_settings
from shared.errors import PermanentError
from shared.graph import build_graph_client
from shared.rollout.lifecycle import SignInResult
from shared.rollout.lifecycle.graph_evidence import GraphEvidence
from tests.unit.lifecycle.fakes import plan_with

SETTINGS = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0", "GRAPH_TIMEOUT_SECONDS": "4"})
BASE = "http://127.0.0.1:7072/v1.0"
TWIN = "WaveGuard - Require MFA (report-only waves)"


def _evidence(tmp_path: Path, handler: httpx.MockTransport) -> GraphEvidence:
    client = build_graph_client(SETTINGS, http_client=httpx.AsyncClient(transport=handler), max_retries=0)
    return GraphEvidence(client, plan_with(tmp_path))


async def test_the_registration_report_is_paged_once_with_the_server_side_filter(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "skiptoken" in str(request.url):
            return httpx.Response(200, json={"value": [{"id": "u3", "isMfaRegistered": True}]})
        return httpx.Response(
            200,
            json={
                "value": [{"id": "u1", "isMfaRegistered": True}, {"id": "u2", "isMfaRegistered": False}],
                "@odata.nextLink": (
                    f"{BASE}/reports/authenticationMethods/userRegistrationDetails?$skiptoken=p2"
                ),
            },
        )

    evidence = _evidence(tmp_path, httpx.MockTransport(answer))
    assert await evidence.registered_users() == frozenset({"u1", "u3"})
    assert len(seen) == 2
    first = seen[0].url
    assert first.path == "/v1.0/reports/authenticationMethods/userRegistrationDetails"
    assert first.params["$filter"] == "isMfaRegistered eq true"
    assert first.params["$top"] == "999"


async def test_sign_ins_keep_only_the_twin_policy_result(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        other = {"id": "p9", "displayName": "Someone else's policy", "result": "failure"}
        return httpx.Response(
            200,
            json={
                "value": [
                    {
                        "userId": "u1",
                        "createdDateTime": "2026-03-02T10:00:00Z",
                        "appliedConditionalAccessPolicies": [
                            other,
                            {"id": "p1", "displayName": TWIN, "result": "reportOnlyFailure"},
                        ],
                    },
                    {
                        "userId": "u2",
                        "createdDateTime": "2026-03-02T11:00:00Z",
                        "appliedConditionalAccessPolicies": [other],
                    },
                ]
            },
        )

    evidence = _evidence(tmp_path, httpx.MockTransport(answer))
    since = datetime(2026, 3, 1, tzinfo=UTC)
    results = await evidence.report_only_sign_ins(TWIN, since=since)
    assert results == [SignInResult("u1", datetime(2026, 3, 2, 10, tzinfo=UTC), "reportOnlyFailure")]
    assert seen[0].url.params["$filter"] == "createdDateTime ge 2026-03-01T00:00:00Z"


async def test_a_refused_read_is_a_permanent_error_naming_the_operation(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"code": "Authorization_RequestDenied", "message": "no"}})

    evidence = _evidence(tmp_path, httpx.MockTransport(answer))
    with pytest.raises(PermanentError, match="registration details"):
        await evidence.registered_users()


async def test_a_failed_beta_sign_in_read_falls_back_to_v1_and_leaves_prompts_unmeasured(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.startswith("/beta/"):
            return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "beta unavailable"}})
        row = {
            "userId": "u1",
            "correlationId": "c-1",
            "isInteractive": True,
            "createdDateTime": "2026-03-02T10:00:00Z",
            "appliedConditionalAccessPolicies": [
                {"id": "p1", "displayName": TWIN, "result": "reportOnlyInterrupted"}
            ],
        }
        return httpx.Response(200, json={"value": [row]})

    evidence = _evidence(tmp_path, httpx.MockTransport(answer))
    results = await evidence.report_only_sign_ins(
        TWIN, since=datetime(2026, 3, 1, tzinfo=UTC), mfa_details=True
    )
    # THEN the report-only evidence is there, and whether it prompted is unknown (not "no")
    assert results == [
        SignInResult("u1", datetime(2026, 3, 2, 10, tzinfo=UTC), "reportOnlyInterrupted", True, None, "c-1")
    ]
    assert seen == ["/beta/auditLogs/signIns", "/v1.0/auditLogs/signIns"]


async def test_a_beta_row_without_the_requirement_field_is_unmeasured_not_a_quiet_sign_in(
    tmp_path: Path,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        rows = [
            {"userId": "u1", "isInteractive": True, "createdDateTime": "2026-03-02T10:00:00Z"},
            {
                "userId": "u2",
                "isInteractive": True,
                "createdDateTime": "2026-03-02T10:00:00Z",
                "authenticationRequirement": "singleFactorAuthentication",
            },
        ]
        return httpx.Response(200, json={"value": rows})

    evidence = _evidence(tmp_path, httpx.MockTransport(answer))
    results = await evidence.report_only_sign_ins(
        TWIN, since=datetime(2026, 3, 1, tzinfo=UTC), mfa_details=True
    )
    assert [(r.user_id, r.mfa_prompt) for r in results] == [("u1", None), ("u2", False)]

"""Sign-in logs: injected sign-ins read back in Graph's signIn shape, filtered and paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.audit_logs.sign_ins.sign_ins_request_builder import SignInsRequestBuilder
from msgraph.generated.models.applied_conditional_access_policy_result import (
    AppliedConditionalAccessPolicyResult,
)

from local.graph_emulator import EmulatorHandle

pytestmark = pytest.mark.functional

POLICY = {
    "id": "5f8a0d6e-1c2b-4d3e-9f00-aa11bb22cc33",
    "displayName": "WaveGuard - Require MFA - IT pilot (report-only)",
}


def sign_in(user: str, hours_ago: float, result: str, **extra: Any) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(hours=hours_ago)
    return {
        "userPrincipalName": user,
        "createdDateTime": created.isoformat(),
        "appliedConditionalAccessPolicies": [{**POLICY, "result": result, "enforcedGrantControls": ["Mfa"]}],
        **extra,
    }


def signins_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/auditLogs/signIns"


async def test_injected_sign_ins_are_read_by_the_sdk_with_their_applied_policies(
    emulator: EmulatorHandle, graph: GraphServiceClient, http: httpx.AsyncClient
) -> None:
    # GIVEN two sign-ins of the CEO: one a report-only failure, one a success
    assert emulator.demo is not None
    ceo = emulator.store.users[emulator.demo.ceo_id]
    injected = await http.post(
        f"{emulator.admin_url}/signins",
        json=[
            sign_in(
                ceo["userPrincipalName"],
                2,
                "reportOnlyFailure",
                clientAppUsed="Mobile Apps and Desktop clients",
            ),
            sign_in(ceo["userPrincipalName"], 1, "reportOnlySuccess"),
        ],
    )
    assert injected.status_code == 201

    # WHEN msgraph-sdk lists the CEO's sign-ins
    query = SignInsRequestBuilder.SignInsRequestBuilderGetQueryParameters(filter=f"userId eq '{ceo['id']}'")
    config = SignInsRequestBuilder.SignInsRequestBuilderGetRequestConfiguration(query_parameters=query)
    page = await graph.audit_logs.sign_ins.get(request_configuration=config)

    # THEN newest first, with the policy results, the user filled in and no enforced CA outcome
    assert page is not None
    rows = page.value or []
    assert [r.applied_conditional_access_policies[0].result for r in rows] == [  # type: ignore[index]
        AppliedConditionalAccessPolicyResult.ReportOnlySuccess,
        AppliedConditionalAccessPolicyResult.ReportOnlyFailure,
    ]
    assert {(r.user_id, r.user_principal_name) for r in rows} == {(ceo["id"], ceo["userPrincipalName"])}
    assert rows[1].client_app_used == "Mobile Apps and Desktop clients"
    assert rows[0].status is not None
    assert rows[0].status.error_code == 0
    assert rows[0].conditional_access_status is not None
    assert rows[0].conditional_access_status.value == "notApplied"


async def test_filters_on_time_user_and_error_code_and_paging(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    await http.post(
        f"{emulator.admin_url}/signins",
        json=[
            sign_in("bg-admin1@contoso.onmicrosoft.com", 48, "notApplied"),
            sign_in(
                "femke.ritchie@contoso.com",
                3,
                "failure",
                status={"errorCode": 53003, "failureReason": "Blocked"},
            ),
            sign_in("femke.ritchie@contoso.com", 2, "success"),
            sign_in("femke.ritchie@contoso.com", 1, "success"),
        ],
    )
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    recent = (await http.get(signins_url(emulator), params={"$filter": f"createdDateTime ge {since}"})).json()
    blocked = (await http.get(signins_url(emulator), params={"$filter": "status/errorCode eq 53003"})).json()
    first = (await http.get(signins_url(emulator), params={"$top": "2"})).json()
    second = (await http.get(first["@odata.nextLink"])).json()

    assert len(recent["value"]) == 3
    [row] = blocked["value"]
    assert (row["conditionalAccessStatus"], row["status"]["failureReason"]) == ("failure", "Blocked")
    assert len(first["value"]) == len(second["value"]) == 2
    assert "@odata.nextLink" not in second
    assert second["value"][-1]["userPrincipalName"] == "bg-admin1@contoso.onmicrosoft.com"
    assert (await http.delete(f"{emulator.admin_url}/signins")).status_code == 204
    assert (await http.get(signins_url(emulator))).json()["value"] == []


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"userPrincipalName": "ghost@contoso.com"}, "signIns[0].userId"),
        ({**sign_in("femke.ritchie@contoso.com", 1, "maybe")}, "appliedConditionalAccessPolicies[0].result"),
        (
            {"userPrincipalName": "femke.ritchie@contoso.com", "createdDateTime": "yesterday"},
            "createdDateTime",
        ),
        (
            {"userPrincipalName": "femke.ritchie@contoso.com", "status": {"errorCode": "x"}},
            "status.errorCode",
        ),
        ({"userPrincipalName": "femke.ritchie@contoso.com", "mood": "happy"}, "unknown fields: mood"),
    ],
)
async def test_bad_injections_name_the_field_and_add_nothing(
    emulator: EmulatorHandle, http: httpx.AsyncClient, item: dict[str, Any], words: str
) -> None:
    response = await http.post(f"{emulator.admin_url}/signins", json=[item])

    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
    assert (await http.get(signins_url(emulator))).json()["value"] == []


async def test_a_bad_filter_is_graphs_400(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    response = await http.get(signins_url(emulator), params={"$filter": "mood eq 'happy'"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"

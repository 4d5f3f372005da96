"""Named locations and the CA conditions that use them: Graph's shapes, its validation, the P2
licence for risk conditions, passwordChange's rules, and the permissions each route needs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient

from local.graph_emulator import EmulatorHandle
from tests.functional.emulator.test_graph_emulator_conditional_access import policies_url, require_mfa

pytestmark = pytest.mark.functional

OFFICE: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "displayName": "Head office",
    "isTrusted": True,
    "ipRanges": [
        {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"},
        {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8:10::/48"},
    ],
}
COUNTRIES: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.countryNamedLocation",
    "displayName": "Allowed countries",
    "countriesAndRegions": ["GB", "IE"],
}


def locations_url(emulator: EmulatorHandle) -> str:
    return f"{emulator.base_url}/identity/conditionalAccess/namedLocations"


async def _create(http: httpx.AsyncClient, emulator: EmulatorHandle, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(locations_url(emulator), json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_both_kinds_are_created_and_read_back_in_graphs_shape(
    emulator: EmulatorHandle, http: httpx.AsyncClient, graph: GraphServiceClient
) -> None:
    office = await _create(http, emulator, OFFICE)
    countries = await _create(http, emulator, COUNTRIES)
    assert office["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert office["ipRanges"] == OFFICE["ipRanges"]
    assert office["isTrusted"] is True
    assert office["createdDateTime"].endswith("Z")
    # Graph's defaults for what the body left out
    assert countries["includeUnknownCountriesAndRegions"] is False
    assert countries["countryLookupMethod"] == "clientIpAddress"
    # msgraph-sdk reads both, each as its own type
    page = await graph.identity.conditional_access.named_locations.get()
    assert page is not None
    kinds = {type(loc).__name__: loc for loc in page.value or []}
    assert set(kinds) == {"IpNamedLocation", "CountryNamedLocation"}
    assert kinds["CountryNamedLocation"].countries_and_regions == ["GB", "IE"]  # type: ignore[attr-defined]
    by_name = await http.get(locations_url(emulator), params={"$filter": "displayName eq 'Head office'"})
    assert [loc["id"] for loc in by_name.json()["value"]] == [office["id"]]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({k: v for k, v in OFFICE.items() if k != "@odata.type"}, "'@odata.type' property is required"),
        ({**OFFICE, "ipRanges": []}, "ipRanges: at least one"),
        ({**OFFICE, "ipRanges": [{"cidrAddress": "203.0.113.0/24"}]}, "ipRanges[0]: each range needs"),
        (
            {
                **OFFICE,
                "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.7"}],
            },
            "is not a valid CIDR range",
        ),
        (
            {
                **OFFICE,
                "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "4.0.0.0/6"}],
            },
            "too wide",
        ),
        (
            {
                **OFFICE,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "2001:db8::/48"}
                ],
            },
            "is not an IPv4 range",
        ),
        ({**COUNTRIES, "countriesAndRegions": ["GB", "XX"]}, "'XX' is not an ISO 3166-1 alpha-2"),
        ({**COUNTRIES, "countryLookupMethod": "gps"}, "countryLookupMethod"),
        ({**COUNTRIES, "isTrusted": True}, "Property 'isTrusted' does not exist on type"),
        ({**OFFICE, "displayName": " "}, "displayName"),
    ],
)
async def test_invalid_named_locations_are_refused_naming_the_property(
    emulator: EmulatorHandle, http: httpx.AsyncClient, body: dict[str, Any], words: str
) -> None:
    response = await http.post(locations_url(emulator), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert words in response.json()["error"]["message"]
    assert (await http.get(locations_url(emulator))).json()["value"] == []


async def test_an_update_needs_the_odata_type_and_cannot_change_it(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    office = await _create(http, emulator, OFFICE)
    url = f"{locations_url(emulator)}/{office['id']}"
    missing = await http.patch(url, json={"isTrusted": False})
    assert missing.status_code == 400
    assert "'@odata.type' property is required in an update" in missing.json()["error"]["message"]
    other = await http.patch(
        url, json={"@odata.type": COUNTRIES["@odata.type"], "countriesAndRegions": ["GB"]}
    )
    assert other.status_code == 400
    new_range = [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"}]
    ok = await http.patch(url, json={"@odata.type": OFFICE["@odata.type"], "ipRanges": new_range})
    assert ok.status_code == 204
    read = (await http.get(url)).json()
    assert read["ipRanges"] == new_range
    assert read["isTrusted"] is True  # untouched by the PATCH


async def test_a_policy_may_reference_only_named_locations_that_exist(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    office = await _create(http, emulator, OFFICE)
    policy = require_mfa(emulator)
    policy["conditions"]["locations"] = {
        "includeLocations": ["All"],
        "excludeLocations": ["44444444-4444-4444-4444-444444444444"],
    }
    unknown = await http.post(policies_url(emulator), json=policy)
    assert unknown.status_code == 400
    assert "invalid or deleted named location '44444444-4444-4444-4444-444444444444'" in unknown.text
    policy["conditions"]["locations"]["excludeLocations"] = [office["id"], "AllTrusted"]
    created = await http.post(policies_url(emulator), json=policy)
    assert created.status_code == 201, created.text
    assert created.json()["conditions"]["locations"]["excludeLocations"] == [office["id"], "AllTrusted"]


async def test_a_referenced_or_trusted_named_location_cannot_be_deleted(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    office = await _create(http, emulator, OFFICE)
    countries = await _create(http, emulator, COUNTRIES)
    policy = require_mfa(emulator)
    policy["conditions"]["locations"] = {"includeLocations": ["All"], "excludeLocations": [countries["id"]]}
    assert (await http.post(policies_url(emulator), json=policy)).status_code == 201
    trusted = await http.delete(f"{locations_url(emulator)}/{office['id']}")
    assert trusted.status_code == 400
    assert "set isTrusted to false first" in trusted.json()["error"]["message"]
    referenced = await http.delete(f"{locations_url(emulator)}/{countries['id']}")
    assert referenced.status_code == 400
    assert policy["displayName"] in referenced.json()["error"]["message"]
    # once untrusted and unreferenced, it goes
    url = f"{locations_url(emulator)}/{office['id']}"
    await http.patch(url, json={"@odata.type": OFFICE["@odata.type"], "isTrusted": False})
    assert (await http.delete(url)).status_code == 204
    assert (await http.get(url)).status_code == 404


async def test_risk_conditions_need_p2_as_entra_says(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    policy = require_mfa(emulator)
    policy["conditions"]["signInRiskLevels"] = ["medium"]
    # GIVEN a tenant with Entra ID P1 only
    (await http.patch(f"{emulator.admin_url}/tenant-settings", json={"licence": "p1"})).raise_for_status()
    refused = await http.post(policies_url(emulator), json=policy)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(
        "1039: Cannot create or update policies with premium P2"
    )
    # WHEN the tenant has P2 the same policy is accepted
    (await http.patch(f"{emulator.admin_url}/tenant-settings", json={"licence": "p2"})).raise_for_status()
    accepted = await http.post(policies_url(emulator), json=policy)
    assert accepted.status_code == 201
    assert accepted.json()["conditions"]["signInRiskLevels"] == ["medium"]


@pytest.mark.parametrize(
    ("grant", "apps", "user_risk", "status"),
    [
        ({"operator": "AND", "builtInControls": ["mfa", "passwordChange"]}, ["All"], ["high"], 201),
        ({"operator": "OR", "builtInControls": ["mfa", "passwordChange"]}, ["All"], ["high"], 400),
        ({"operator": "AND", "builtInControls": ["passwordChange"]}, ["All"], ["high"], 400),
        (
            {"operator": "AND", "builtInControls": ["mfa", "passwordChange"]},
            ["00000003-0000-0ff1-ce00-000000000000"],
            ["high"],
            400,
        ),
        ({"operator": "AND", "builtInControls": ["mfa", "passwordChange"]}, ["All"], [], 400),
    ],
)
async def test_password_change_goes_only_with_mfa_and_all_apps_for_risky_users(
    emulator: EmulatorHandle,
    http: httpx.AsyncClient,
    grant: dict[str, Any],
    apps: list[str],
    user_risk: list[str],
    status: int,
) -> None:
    policy = require_mfa(emulator, grantControls=grant)
    policy["conditions"]["applications"] = {"includeApplications": apps}
    policy["conditions"]["userRiskLevels"] = user_risk
    response = await http.post(policies_url(emulator), json=policy)
    assert response.status_code == status, response.text
    if status == 400:
        assert "passwordChange" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("permissions", "read", "write"),
    [
        (["Policy.Read.All"], 200, 403),
        (["Policy.ReadWrite.ConditionalAccess"], 200, 403),
        (["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"], 200, 201),
        (["User.Read.All"], 403, 403),
    ],
)
def test_named_locations_need_the_conditional_access_permissions(
    emulator: EmulatorHandle, permissions: list[str], read: int, write: int
) -> None:
    # the app's own calls (no tenant-admin header): Graph's permission reference for namedLocation
    emulator.reset(permissions=permissions)
    assert httpx.get(locations_url(emulator)).status_code == read
    assert httpx.post(locations_url(emulator), json=COUNTRIES).status_code == write

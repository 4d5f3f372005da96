"""Users through msgraph-sdk: get by id and UPN, $filter, $select, paging, manager, errors."""

from __future__ import annotations

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from local.graph_emulator import BREAK_GLASS_UPNS, DEMO_USER_COUNT, EmulatorHandle

pytestmark = pytest.mark.functional

Query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters


def it_person(emulator: EmulatorHandle) -> dict[str, object]:
    return next(
        u for u in emulator.store.users.values() if u["department"] == "IT" and "Head" not in u["jobTitle"]
    )


async def test_a_user_is_found_by_id_and_by_upn(emulator: EmulatorHandle, graph: GraphServiceClient) -> None:
    # GIVEN a seeded IT employee
    person = it_person(emulator)

    # WHEN the SDK asks for them by object id and by userPrincipalName
    by_id = await graph.users.by_user_id(str(person["id"])).get()
    by_upn = await graph.users.by_user_id(str(person["userPrincipalName"])).get()

    # THEN both answers are the same user, with Graph's default properties
    assert by_id is not None
    assert by_upn is not None
    assert by_id.id == by_upn.id == person["id"]
    assert by_upn.user_principal_name == person["userPrincipalName"]
    assert by_upn.display_name == person["displayName"]
    # department is not a default property on Graph v1.0: it must be $select-ed
    assert by_upn.department is None


async def test_select_returns_the_directory_fields_waveguard_needs(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    person = it_person(emulator)
    fields = ["id", "employeeId", "department", "country", "usageLocation", "accountEnabled", "jobTitle"]

    user = await graph.users.by_user_id(str(person["id"])).get(
        request_configuration=RequestConfiguration(query_parameters=Query(select=fields))
    )

    assert user is not None
    assert (user.employee_id, user.department, user.country) == (
        person["employeeId"],
        "IT",
        person["country"],
    )
    assert user.usage_location == person["country"]
    assert user.account_enabled is person["accountEnabled"]
    assert user.display_name is None  # not selected


async def test_filtered_listing_pages_to_the_end_and_counts_the_department(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    # GIVEN the demo tenant's Engineering department (head + 70 staff)
    assert emulator.demo is not None
    expected = emulator.demo.department_counts["Engineering"]

    # WHEN the SDK lists it 10 at a time and follows every @odata.nextLink
    config = RequestConfiguration(
        query_parameters=Query(filter="department eq 'engineering'", select=["id", "department"], top=10)
    )
    page = await graph.users.get(request_configuration=config)
    seen: list[str] = []
    pages = 0
    while page is not None:
        pages += 1
        seen.extend(str(u.id) for u in page.value or [])
        assert all(u.department == "Engineering" for u in page.value or [])
        if not page.odata_next_link:
            break
        page = await graph.users.with_url(page.odata_next_link).get()

    # THEN every member of the department came back exactly once (case-insensitive match, like Graph)
    assert len(seen) == len(set(seen)) == expected
    assert pages == -(-expected // 10)


async def test_paging_through_every_user_returns_the_whole_tenant(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    # GIVEN the demo tenant; WHEN the SDK pages through /users with the default page size
    page = await graph.users.get(
        request_configuration=RequestConfiguration(query_parameters=Query(select=["id"]))
    )
    ids: list[str] = []
    while page is not None:
        ids.extend(str(u.id) for u in page.value or [])
        page = await graph.users.with_url(page.odata_next_link).get() if page.odata_next_link else None

    # THEN it saw every seeded user once, 100 per page
    assert len(ids) == len(set(ids)) == DEMO_USER_COUNT == len(emulator.store.users)


async def test_the_largest_page_holds_the_whole_tenant(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    body = (await http.get(f"{emulator.base_url}/users", params={"$top": "999", "$select": "id"})).json()

    assert len(body["value"]) == DEMO_USER_COUNT
    assert "@odata.nextLink" not in body


async def test_filters_combine_with_and_in_and_startswith(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    store_users = list(emulator.store.users.values())
    expected = {
        u["id"]
        for u in store_users
        if u["department"] in ("HR", "Legal") and str(u["userPrincipalName"]).startswith(("a", "e"))
    }
    clause = (
        "department in ('HR', 'Legal') "
        "and (startswith(userPrincipalName, 'a') or startswith(userPrincipalName, 'E'))"
    )

    page = await graph.users.get(
        request_configuration=RequestConfiguration(query_parameters=Query(filter=clause, top=999))
    )

    assert page is not None
    assert {u.id for u in page.value or []} == expected


async def test_employee_id_and_upn_filters_find_one_person(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    person = it_person(emulator)

    by_employee = await graph.users.get(
        request_configuration=RequestConfiguration(
            query_parameters=Query(filter=f"employeeId eq '{person['employeeId']}'")
        )
    )
    by_upn = await graph.users.get(
        request_configuration=RequestConfiguration(
            query_parameters=Query(filter=f"userPrincipalName eq '{person['userPrincipalName']}'")
        )
    )

    assert by_employee is not None
    assert by_upn is not None
    assert [u.id for u in by_employee.value or []] == [person["id"]]
    assert [u.id for u in by_upn.value or []] == [person["id"]]


async def test_break_glass_accounts_have_no_employee_id(
    emulator: EmulatorHandle, graph: GraphServiceClient
) -> None:
    for upn in BREAK_GLASS_UPNS:
        user = await graph.users.by_user_id(upn).get(
            request_configuration=RequestConfiguration(query_parameters=Query(select=["id", "employeeId"]))
        )
        assert user is not None
        assert user.employee_id is None


async def test_manager_chain_reaches_the_ceo(emulator: EmulatorHandle, graph: GraphServiceClient) -> None:
    # GIVEN an IT employee, whose manager is the head of IT, who reports to the CEO
    assert emulator.demo is not None
    person = it_person(emulator)

    manager = await graph.users.by_user_id(str(person["id"])).manager.get()
    grand_manager = await graph.users.by_user_id(str(manager.id if manager else "")).manager.get()

    assert manager is not None
    assert manager.id == emulator.demo.head_ids["IT"]
    assert grand_manager is not None
    assert grand_manager.id == emulator.demo.ceo_id
    # and the CEO has no manager: Graph answers 404
    with pytest.raises(ODataError) as raised:
        await graph.users.by_user_id(emulator.demo.ceo_id).manager.get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "Request_ResourceNotFound"


async def test_unknown_user_is_graphs_404(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.users.by_user_id("nobody@contoso.com").get()

    assert raised.value.response_status_code == 404
    assert raised.value.error is not None
    assert raised.value.error.code == "Request_ResourceNotFound"
    assert raised.value.error.message == (
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects "
        "are not present."
    )


async def test_bad_queries_are_refused_with_graphs_errors(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    users_url = f"{emulator.base_url}/users"

    too_big = await http.get(users_url, params={"$top": "1000"})
    unknown_select = await http.get(users_url, params={"$select": "shoeSize"})
    unsupported_filter = await http.get(users_url, params={"$filter": "businessPhones eq '1'"})
    broken_filter = await http.get(users_url, params={"$filter": "department eq"})
    count_without_header = await http.get(users_url, params={"$count": "true"})

    assert too_big.status_code == 400
    assert "Must be between 1 and 999" in too_big.json()["error"]["message"]
    assert unknown_select.status_code == 400
    assert "Could not find a property named 'shoeSize'" in unknown_select.json()["error"]["message"]
    assert unsupported_filter.status_code == 400
    assert unsupported_filter.json()["error"]["code"] == "Request_UnsupportedQuery"
    assert broken_filter.status_code == 400
    assert "Invalid filter clause" in broken_filter.json()["error"]["message"]
    assert count_without_header.status_code == 400
    assert count_without_header.json()["error"]["message"] == "$count is not currently supported."


async def test_count_with_consistency_level(emulator: EmulatorHandle, http: httpx.AsyncClient) -> None:
    assert emulator.demo is not None
    headers = {"ConsistencyLevel": "eventual"}

    listing = await http.get(
        f"{emulator.base_url}/users",
        params={"$count": "true", "$filter": "department eq 'Finance'", "$top": "5"},
        headers=headers,
    )
    bare = await http.get(f"{emulator.base_url}/users/$count", headers=headers)

    assert listing.json()["@odata.count"] == emulator.demo.department_counts["Finance"]
    assert len(listing.json()["value"]) == 5
    assert bare.text == str(len(emulator.store.users))


async def test_a_users_manager_comes_expanded_on_the_user_itself(
    emulator: EmulatorHandle, http: httpx.AsyncClient
) -> None:
    # GIVEN an IT employee (whose manager is the head of IT) and the CEO (who has none)
    person = it_person(emulator)
    head = emulator.store.manager_of(str(person["id"]))
    assert head is not None
    ceo = next(u for u in emulator.store.users.values() if emulator.store.manager_of(str(u["id"])) is None)
    base = f"{emulator.base_url}/users"

    # WHEN the user is read with $expand=manager($select=...), by UPN
    params = {"$select": "id,displayName", "$expand": "manager($select=id,mail)"}
    answer = await http.get(f"{base}/{person['userPrincipalName']}", params=params)

    # THEN the user carries its manager, with only the manager's selected fields
    assert answer.status_code == 200
    body = answer.json()
    assert (body["id"], body["displayName"]) == (person["id"], person["displayName"])
    assert body["manager"] == {"@odata.type": "#microsoft.graph.user", "id": head["id"], "mail": head["mail"]}
    # AND a plain $expand=manager gives the manager's default properties; none set, no property
    plain = (await http.get(f"{base}/{person['id']}", params={"$expand": "manager"})).json()
    assert plain["manager"]["displayName"] == head["displayName"]
    alone = (await http.get(f"{base}/{ceo['id']}", params={"$expand": "manager"})).json()
    assert "manager" not in alone

    # AND anything else expanded is a 400 that names it
    refused = await http.get(f"{base}/{person['id']}", params={"$expand": "memberOf"})
    assert refused.status_code == 400
    assert "memberOf" in refused.json()["error"]["message"]
    bad_select = await http.get(f"{base}/{person['id']}", params={"$expand": "manager($select=nope)"})
    assert bad_select.status_code == 400

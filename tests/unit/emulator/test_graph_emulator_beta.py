"""The /beta API version (beta-only route tables) and the demo's per-user MFA people, in-process."""

from __future__ import annotations

import json

import pytest

from local.graph_emulator import permissions
from local.graph_emulator.app import GRAPH_ROUTE_TABLES, Emulator, EmulatorConfig
from local.graph_emulator.batch import BatchItem, to_request
from local.graph_emulator.errors import GraphError
from local.graph_emulator.resources import per_user_mfa
from local.graph_emulator.resources.registration import is_mfa_registered
from local.graph_emulator.routing import (
    BETA,
    V1,
    Call,
    Request,
    Response,
    Router,
    RouteTable,
    api_version,
    request_version,
)
from local.graph_emulator.seed import BREAK_GLASS_UPNS, PER_USER_MFA, seed_demo
from local.graph_emulator.store import TenantStore

ADMIN = {permissions.ADMIN_CALLER_HEADER: permissions.ADMIN_CALLER_VALUE}


def _ok(call: Call) -> Response:
    return Response.json({"ok": True})


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1.0", V1),
        ("/v1.0/users", V1),
        ("/beta", BETA),
        ("/beta/users/x/authentication/requirements", BETA),
        ("/betas/users", None),
        ("/v1.00/users", None),
        ("/_emulator/state", None),
        ("/", None),
    ],
)
def test_api_version_reads_the_path_prefix(path: str, version: str | None) -> None:
    assert api_version(path) == version


def test_a_request_outside_beta_is_a_v1_request() -> None:
    assert request_version(Request("GET", "/beta/users")) == BETA
    assert request_version(Request("GET", "/v1.0/users")) == V1
    assert request_version(Request("GET", "/elsewhere")) == V1


def test_a_beta_only_table_is_routed_under_beta_and_an_unknown_segment_under_v1() -> None:
    shared, beta_only = RouteTable(), RouteTable(versions=(BETA,))
    shared.get("/users/{user_id}")(_ok)
    beta_only.get("/users/{user_id}/authentication/requirements")(_ok)

    v1_router = Router([shared, beta_only], version=V1)
    beta_router = Router([shared, beta_only], version=BETA)

    assert beta_router.resolve_route("GET", "/users/u1/authentication/requirements")[1] == {"user_id": "u1"}
    assert v1_router.resolve_route("GET", "/users/u1")[1] == {"user_id": "u1"}
    with pytest.raises(GraphError) as refused:
        v1_router.resolve_route("GET", "/users/u1/authentication/requirements")
    assert (refused.value.status, refused.value.code) == (400, "BadRequest")
    assert refused.value.message == "Resource not found for the segment 'authentication'."
    assert len(Router([shared, beta_only]).routes) == 2  # no version: every table


def test_a_route_table_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="versions"):
        RouteTable(versions=("v2.0",))
    with pytest.raises(ValueError, match="versions"):
        RouteTable(versions=())


def test_the_per_user_mfa_routes_are_beta_only_and_have_requirements() -> None:
    assert per_user_mfa.routes.versions == frozenset({BETA})
    assert all(
        table.versions == frozenset({V1, BETA})
        for table in GRAPH_ROUTE_TABLES
        if table is not per_user_mfa.routes
    )
    key = per_user_mfa.BASE
    assert permissions.REQUIREMENTS[("GET", key)] == permissions.any_of(
        "Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"
    )
    assert permissions.REQUIREMENTS[("PATCH", key)] == permissions.any_of(
        "Policy.ReadWrite.AuthenticationMethod"
    )


def test_batch_items_take_the_outer_requests_version() -> None:
    item = BatchItem("1", "GET", "/users/u1/authentication/requirements?$select=perUserMfaState")

    beta = to_request(item, Request("POST", "/beta/$batch"))
    v1 = to_request(item, Request("POST", "/v1.0/$batch"))

    assert beta.path == "/beta/users/u1/authentication/requirements"
    assert v1.path == "/v1.0/users/u1/authentication/requirements"
    assert beta.query == [("$select", "perUserMfaState")]


def test_v1_answers_are_unchanged_by_beta() -> None:
    emulator = Emulator(EmulatorConfig())
    assert emulator.demo is not None
    ceo = emulator.demo.ceo_id

    v1 = emulator.handle(Request("GET", f"/v1.0/users/{ceo}", headers=ADMIN))
    beta = emulator.handle(Request("GET", f"/beta/users/{ceo}", headers=ADMIN))
    beta_only = emulator.handle(
        Request("GET", f"/v1.0/users/{ceo}/authentication/requirements", headers=ADMIN)
    )

    assert json.loads(v1.encoded_body())["@odata.context"] == "http://127.0.0.1/v1.0/$metadata#users/$entity"
    assert (
        json.loads(beta.encoded_body())["@odata.context"] == "http://127.0.0.1/beta/$metadata#users/$entity"
    )
    assert beta_only.status == 400
    assert emulator.graph_router is emulator.graph_routers[V1]


def test_the_demo_puts_six_enforced_and_four_enabled_it_and_finance_people_on_per_user_mfa() -> None:
    store = TenantStore()
    tenant = seed_demo(store)

    chosen = tenant.per_user_mfa
    assert sorted(chosen.values()) == ["enabled"] * 4 + ["enforced"] * 6
    for department, (enforced, enabled) in PER_USER_MFA.items():
        states = [s for uid, s in chosen.items() if store.users[uid]["department"] == department]
        assert sorted(states) == ["enabled"] * enabled + ["enforced"] * enforced
    pilot = set(store.member_ids(tenant.it_pilot_group_id))
    assert {uid for uid in chosen if store.users[uid]["department"] == "IT"} <= pilot
    assert not {u["id"] for u in store.users.values() if u["userPrincipalName"] in BREAK_GLASS_UPNS} & set(
        chosen
    )
    # enforced people registered MFA; enabled ones have not yet (as a PATCH to enabled would leave them)
    assert all(is_mfa_registered(store, uid) == (state == "enforced") for uid, state in chosen.items())
    assert {uid: per_user_mfa.state_of(store, uid) for uid in chosen} == chosen
    assert store.extension(per_user_mfa.EXTENSION, per_user_mfa.PerUserMfa).count() == 10


def test_the_per_user_mfa_people_are_deterministic_from_the_random_seed() -> None:
    first, again, other = (seed_demo(TenantStore(), random_seed=seed).per_user_mfa for seed in (42, 42, 7))

    assert first == again
    assert first != other
    assert sorted(other.values()) == ["enabled"] * 4 + ["enforced"] * 6


def test_the_extension_round_trips_and_forgets_disabled_users() -> None:
    store = TenantStore()
    per_user_mfa.set_state(store, "a", "enforced")
    per_user_mfa.set_state(store, "b", "enabled")
    per_user_mfa.set_state(store, "b", "disabled")

    restored = TenantStore.from_json(json.loads(json.dumps(store.to_json())))

    assert per_user_mfa.state_of(restored, "a") == "enforced"
    assert per_user_mfa.state_of(restored, "b") == "disabled"
    assert restored.extension(per_user_mfa.EXTENSION, per_user_mfa.PerUserMfa).count() == 1
    with pytest.raises(ValueError, match="enforced"):
        per_user_mfa.set_state(store, "a", "on")

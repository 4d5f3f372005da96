"""The permission model: what the app holds (infra/), what every route requires (Graph's reference)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.graph_emulator import permissions
from local.graph_emulator.app import GRAPH_ROUTE_TABLES, Emulator, EmulatorConfig
from local.graph_emulator.routing import Request

REPO = Path(__file__).resolve().parents[3]


def _served_routes() -> set[tuple[str, str]]:
    return {(route.method, route.pattern) for table in GRAPH_ROUTE_TABLES for route in table.routes}


def test_every_graph_route_has_a_requirement_and_no_requirement_names_a_missing_route() -> None:
    served = _served_routes()
    assert served - set(permissions.REQUIREMENTS) == set(), "routes without a permission requirement"
    assert set(permissions.REQUIREMENTS) - served == set(), "requirements for routes the emulator lacks"
    assert served >= permissions.OWNER_ROUTES
    assert served >= permissions.EXCHANGE_ROUTES


def test_only_batch_needs_no_permission_and_every_alternative_names_permissions() -> None:
    free = {key for key, requirement in permissions.REQUIREMENTS.items() if frozenset() in requirement}
    assert free == {("POST", "/$batch")}
    for key, requirement in permissions.REQUIREMENTS.items():
        assert requirement, key
        if key != ("POST", "/$batch"):
            assert all(alternative for alternative in requirement), key


def test_infra_default_is_what_a_default_deployment_grants() -> None:
    # GIVEN the template's defaults: CA managed, mail granted, destructive responses off, narrow TAP
    defaults = permissions.bicep_defaults()
    assert defaults["manageConditionalAccess"] is True
    assert defaults["enableDestructiveResponses"] is False
    assert defaults["tapPermission"] == "UserAuthMethod-TAP.ReadWrite.All"
    granted = permissions.infra_permissions()
    # THEN the always-granted entries plus the switched ones of those defaults
    assert "IdentityRiskyUser.Read.All" in granted
    assert "UserAuthMethod-TAP.ReadWrite.All" in granted
    assert not {"IdentityRiskyUser.ReadWrite.All", "User.RevokeSessions.All"} & granted
    assert "UserAuthenticationMethod.ReadWrite.All" not in granted
    assert "LicenseAssignment.Read.All" in granted
    assert defaults["migratePerUserMfa"] is True
    assert "Policy.ReadWrite.AuthenticationMethod" in granted
    assert len(granted) == 16
    assert granted < permissions.all_permissions()
    assert len(permissions.all_permissions()) == 19


def test_a_grant_flips_a_switch() -> None:
    granted = permissions.resolve_permissions("infra", ["enableDestructiveResponses=true"])
    assert {"IdentityRiskyUser.ReadWrite.All", "User.RevokeSessions.All"} <= granted
    assert "IdentityRiskyUser.Read.All" in granted  # always: Graph names only it for listing
    no_migration = permissions.resolve_permissions("infra", ["migratePerUserMfa=false"])
    assert "Policy.ReadWrite.AuthenticationMethod" not in no_migration
    no_ca = permissions.resolve_permissions("infra", ["manageConditionalAccess=false"])
    assert not {"Policy.ReadWrite.ConditionalAccess", "Application.Read.All"} & no_ca
    assert permissions.resolve_permissions("User.Read.All, Mail.Send") == {"User.Read.All", "Mail.Send"}
    assert permissions.resolve_permissions("all") == permissions.all_permissions()


@pytest.mark.parametrize(
    "flag", ["enableDestructiveResponses", "noSuchParam=true", "enableDestructiveResponses=yes"]
)
def test_a_bad_grant_is_refused(flag: str) -> None:
    with pytest.raises(ValueError, match=r"grant|parameter"):
        permissions.resolve_permissions("infra", [flag])


def test_every_permission_the_file_lists_is_named_by_some_requirement() -> None:
    named = {name for req in permissions.REQUIREMENTS.values() for alt in req for name in alt}
    implied_by = set(permissions.IMPLIED)
    assert permissions.all_permissions() - named - implied_by == set()


def test_the_app_never_sends_the_tenant_admin_header() -> None:
    pattern = re.compile(re.escape(permissions.ADMIN_CALLER_HEADER) + "|tenant-admin", re.IGNORECASE)
    offenders = [
        str(path.relative_to(REPO))
        for root in ("shared", "handlers", "cli")
        for path in sorted((REPO / root).rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    offenders += [name for name in ("function_app.py",) if pattern.search((REPO / name).read_text("utf-8"))]
    assert offenders == []


def _call(emulator: Emulator, method: str, path: str, *, admin: bool = False) -> tuple[int, object]:
    headers = dict(permissions.ADMIN_HEADERS) if admin else {}
    answer = emulator.handle(
        Request(method, f"/v1.0{path}", headers=headers, request_id="r1", client_request_id="c1")
    )
    return answer.status, answer.body


def test_a_call_not_covered_is_graphs_403_and_is_logged() -> None:
    emulator = Emulator(EmulatorConfig(seed="empty", permissions=frozenset({"Group.Read.All"})))
    status, body = _call(emulator, "GET", "/users")
    assert status == 403
    assert isinstance(body, dict)
    error = body["error"]
    assert error["code"] == "Authorization_RequestDenied"
    assert error["message"] == "Insufficient privileges to complete the operation."
    assert error["innerError"]["request-id"] == "r1"
    assert error["innerError"]["client-request-id"] == "c1"
    assert [(e["method"], e["status"]) for e in emulator.requests.entries()] == [("GET", 403)]
    # a tenant admin may
    assert _call(emulator, "GET", "/users", admin=True)[0] == 200


def test_exchange_refuses_with_its_own_error() -> None:
    emulator = Emulator(EmulatorConfig(seed="demo", permissions=frozenset({"User.Read.All"})))
    status, body = _call(emulator, "GET", "/users/someone@contoso.com/messages/abc")
    assert status == 403
    assert isinstance(body, dict)
    assert body["error"]["code"] == "ErrorAccessDenied"
    assert body["error"]["message"] == "Access is denied. Check credentials and try again."

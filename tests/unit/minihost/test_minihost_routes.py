"""Route template matching as the Functions host does it (ASP.NET Core routing rules apps rely on)."""

from __future__ import annotations

import pytest

from local.minihost.errors import BindingError
from local.minihost.routes import compile_route


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("health", "health", {}),
        ("health", "HEALTH", {}),
        ("health", "health/", {}),
        ("items/{id}", "items/42", {"id": "42"}),
        ("items/{id}", "items/a%20b", {"id": "a b"}),
        ("items/{id:int}", "items/-7", {"id": "-7"}),
        (
            "items/{id:guid}",
            "items/6f1c1a9e-2b3d-4c5e-8f70-123456789abc",
            {"id": "6f1c1a9e-2b3d-4c5e-8f70-123456789abc"},
        ),
        ("items/{id:alpha}", "items/abc", {"id": "abc"}),
        ("items/{id:bool}", "items/True", {"id": "True"}),
        ("items/{n:int:range(1,5)}", "items/5", {"n": "5"}),
        ("items/{n:min(10)}", "items/10", {"n": "10"}),
        ("items/{code:length(3)}", "items/abc", {"code": "abc"}),
        ("items/{code:regex(^[a-z]+\\d$)}", "items/ab1", {"code": "ab1"}),
        ("users/{id}/roles/{role}", "users/u1/roles/admin", {"id": "u1", "role": "admin"}),
        ("orders/{id}/{note?}", "orders/1", {"id": "1"}),
        ("orders/{id}/{note?}", "orders/1/rush", {"id": "1", "note": "rush"}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{*path}", "files", {}),
        ("files/{name}.{ext}", "files/report.final.pdf", {"name": "report.final", "ext": "pdf"}),
    ],
)
def test_matching_paths_yield_route_params(template: str, path: str, expected: dict[str, str]) -> None:
    # GIVEN a route template WHEN a request path matches THEN the route params are extracted (URL-decoded)
    assert compile_route(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("health", "healthz"),
        ("items/{id}", "items"),
        ("items/{id}", "items/1/extra"),
        ("items/{id:int}", "items/abc"),
        ("items/{id:int}", "items/99999999999"),
        ("items/{id:long}", "items/1.5"),
        ("items/{id:guid}", "items/not-a-guid"),
        ("items/{id:alpha}", "items/ab1"),
        ("items/{n:int:range(1,5)}", "items/6"),
        ("items/{n:max(3)}", "items/4"),
        ("items/{code:length(3)}", "items/abcd"),
        ("items/{code:minlength(2)}", "items/a"),
        ("items/{code:maxlength(2)}", "items/abc"),
        ("orders/{id}/{note?}", "orders"),
    ],
)
def test_non_matching_paths_and_failed_constraints_do_not_match(template: str, path: str) -> None:
    # GIVEN a template WHEN the path or a constraint does not fit THEN no match (the request ends in 404)
    assert compile_route(template).match(path) is None


def test_literal_segments_take_precedence_over_parameters() -> None:
    # GIVEN "items/new" and "items/{id}" WHEN ordering routes THEN the literal one sorts first, as in ASP.NET
    literal = compile_route("items/new")
    constrained = compile_route("items/{id:int}")
    free = compile_route("items/{id}")
    catch_all = compile_route("items/{*rest}")
    ordered = sorted([catch_all, free, constrained, literal], key=lambda r: r.precedence)
    assert [r.template for r in ordered] == ["items/new", "items/{id:int}", "items/{id}", "items/{*rest}"]


@pytest.mark.parametrize(
    ("template", "mentions"),
    [
        ("items/{id:nosuch}", "unsupported constraint 'nosuch'"),
        ("items/{id?}/more", "optional and catch-all parameters must be the whole last segment"),
        ("items/{*rest}/more", "optional and catch-all parameters must be the whole last segment"),
        ("items/{id}/{ID}", "parameter names must be unique"),
        ("items/{1st}", "'1st' is not a valid parameter name"),
        ("items/{id=5}", "default values"),
        ("items//x", "empty segment"),
        ("items/{id", "unbalanced braces"),
    ],
)
def test_bad_templates_are_rejected_with_the_reason(template: str, mentions: str) -> None:
    with pytest.raises(BindingError, match=mentions.replace("(", r"\(").replace("?", r"\?")):
        compile_route(template)

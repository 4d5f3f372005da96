"""HTTP route templates as the Functions host reads them (ASP.NET Core routing, the parts apps use).

Supported: literal segments (case-insensitive), `{name}`, optional `{name?}` (last segment only),
constraints `{id:int}`, `{x:int:min(1)}`, catch-all `{*rest}`, several parameters in one segment
(`{name}.{ext}`), a trailing slash. A constraint that fails means "this route does not match", so
the request falls through to other routes and ends in 404, as in Azure.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from local.minihost.errors import BindingError

_PARAM = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONSTRAINT = re.compile(r"^(?P<name>[a-z]+)(?:\((?P<args>.*)\))?$")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

# Precedence of a segment, lower first: like ASP.NET, literal beats constrained beats free parameter.
_LITERAL, _COMPLEX, _CONSTRAINED, _FREE, _OPTIONAL, _CATCH_ALL = range(6)


@dataclass(frozen=True)
class Parameter:
    """One `{...}` in a template."""

    name: str
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    catch_all: bool


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template; `match` returns the route parameters or None."""

    template: str
    pattern: re.Pattern[str]
    parameters: tuple[Parameter, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when `path` (after the route prefix, no leading slash) matches."""
        found = self.pattern.fullmatch(path.rstrip("/"))
        if found is None:
            return None
        params: dict[str, str] = {}
        for index, parameter in enumerate(self.parameters):
            raw = found.group(f"p{index}")
            if raw is None or raw == "":
                if parameter.optional or parameter.catch_all:
                    continue
                return None
            value = unquote(raw)
            if not all(check(value) for check in parameter.checks):
                return None
            params[parameter.name] = value
        return params


def compile_route(template: str) -> RouteTemplate:
    """Compile a route template such as "items/{id:int}".

    Raises:
        BindingError: the template is malformed or uses an unsupported constraint.
    """
    segments = template.strip("/").split("/") if template.strip("/") else []
    parameters: list[Parameter] = []
    regex_parts: list[str] = []
    precedence: list[int] = []
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if not segment:
            raise BindingError(f"route {template!r}: empty segment ('//')")
        part, rank = _compile_segment(template, segment, parameters, last=last)
        regex_parts.append(part)
        precedence.append(rank)
    names = [p.name.lower() for p in parameters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BindingError(f"route {template!r}: parameter names must be unique; repeated: {duplicates}")
    regex = _join_segments(regex_parts, precedence)
    return RouteTemplate(template, re.compile(regex, re.IGNORECASE), tuple(parameters), tuple(precedence))


def _compile_segment(
    template: str, segment: str, parameters: list[Parameter], *, last: bool
) -> tuple[str, int]:
    pieces = _PARAM.split(segment)  # literal, param, literal, param, ..., literal
    literals, params = pieces[0::2], pieces[1::2]
    if any("{" in text or "}" in text for text in literals):
        raise BindingError(f"route {template!r}: unbalanced braces in segment {segment!r}")
    if not params:
        return re.escape(segment), _LITERAL
    regex = ""
    rank = _LITERAL
    for index, body in enumerate(params):
        parameter = _parse_parameter(template, body)
        alone = len(params) == 1 and not literals[0] and not literals[1]
        if (parameter.optional or parameter.catch_all) and not (alone and last):
            raise BindingError(
                f"route {template!r}: optional and catch-all parameters must be the whole last segment; "
                f"found {segment!r}"
            )
        # Greedy groups split "a.b.txt" by "{name}.{ext}" as ASP.NET does: from the right.
        group = f"(?P<p{len(parameters)}>{'.*' if parameter.catch_all else '[^/]+'})"
        regex += re.escape(literals[index]) + group
        parameters.append(parameter)
        rank = _segment_rank(parameter, alone)
    regex += re.escape(literals[-1])
    return regex, rank


def _segment_rank(parameter: Parameter, alone: bool) -> int:
    if not alone:
        return _COMPLEX
    if parameter.catch_all:
        return _CATCH_ALL
    if parameter.optional:
        return _OPTIONAL
    return _CONSTRAINED if parameter.checks else _FREE


def _join_segments(parts: list[str], precedence: list[int]) -> str:
    if not parts:
        return ""
    head = "/".join(parts[:-1])
    if precedence[-1] in {_OPTIONAL, _CATCH_ALL}:
        return head + (f"(?:/{parts[-1]})?" if head else f"(?:{parts[-1]})?")
    return head + ("/" if head else "") + parts[-1]


def _parse_parameter(template: str, body: str) -> Parameter:
    if "=" in body:
        raise BindingError(f"route {template!r}: default values ('{{{body}}}') are not supported")
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraint_texts = _split_constraints(body)
    if not _NAME.match(name):
        raise BindingError(f"route {template!r}: {name!r} is not a valid parameter name")
    checks = tuple(_constraint(template, name, text) for text in constraint_texts)
    return Parameter(name, checks, optional, catch_all)


def _split_constraints(body: str) -> list[str]:
    """Split "id:int:range(1,5)" on colons outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in body:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return parts


def _constraint(template: str, name: str, text: str) -> Callable[[str], bool]:
    found = _CONSTRAINT.match(text)
    kind = found["name"] if found else text
    raw_args = found["args"] if found else None
    args = [a.strip() for a in raw_args.split(",")] if raw_args is not None else []
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _in_int_range(v, *_INT32),
        "long": lambda v: _in_int_range(v, *_INT64),
        "bool": lambda v: v.lower() in {"true", "false"},
        "guid": _is_guid,
        "alpha": lambda v: v.isascii() and v.isalpha(),
        "double": _is_number,
        "float": _is_number,
        "decimal": _is_number,
        "datetime": _is_datetime,
    }
    if kind in simple and not args:
        return simple[kind]
    numbers = [int(a) for a in args if re.fullmatch(r"-?\d+", a)]
    if len(numbers) != len(args):
        numbers = []
    if kind in {"min", "max", "minlength", "maxlength"} and len(numbers) == 1:
        return _bound_check(kind, numbers[0])
    if kind == "range" and len(numbers) == 2:
        return lambda v: _in_int_range(v, numbers[0], numbers[1])
    if kind == "length" and len(numbers) in {1, 2}:
        return lambda v: numbers[0] <= len(v) <= numbers[-1]
    if kind == "regex" and found is not None and found["args"]:
        pattern = re.compile(found["args"], re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    raise BindingError(
        f"route {template!r}: parameter {name!r} has unsupported constraint {text!r}; expected one of "
        "int, long, bool, guid, alpha, double, float, decimal, datetime, min(n), max(n), range(a,b), "
        "length(n), length(a,b), minlength(n), maxlength(n), regex(...)"
    )


def _bound_check(kind: str, bound: int) -> Callable[[str], bool]:
    if kind == "min":
        return lambda v: _in_int_range(v, bound, _INT64[1])
    if kind == "max":
        return lambda v: _in_int_range(v, _INT64[0], bound)
    if kind == "minlength":
        return lambda v: len(v) >= bound
    return lambda v: len(v) <= bound


def _in_int_range(value: str, low: int, high: int) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None and low <= int(value) <= high


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True

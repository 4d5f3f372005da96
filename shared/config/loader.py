"""Load the plan file: YAML with line numbers, ``${VAR}`` interpolation, validation, one clear error."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from shared.config.base import REQUIRE_SECRETS_FROM_ENV
from shared.config.interpolate import PathPart, format_path, interpolate
from shared.config.plan import RolloutPlan
from shared.config.settings import APP_ROOT
from shared.errors import ConfigError

__all__ = ["display_name", "load_plan", "parse_plan"]


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: ``NO`` (Norway) and ``on`` stay strings."""


_PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlanLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def display_name(path: Path) -> str:
    """The path as a user would type it: relative to the working directory or app root when inside."""
    resolved = path.resolve()
    for base in (Path.cwd(), APP_ROOT):
        try:
            return str(resolved.relative_to(base))
        except ValueError:
            continue
    return str(path)


def load_plan(path: str | Path, environ: Mapping[str, str]) -> RolloutPlan:
    """Read, interpolate and validate the plan file at ``path``.

    The file is read on every call; a text (with the same environment) validated before is not
    parsed again: the services and the Graph client's break-glass guard each load the plan, and a
    parse costs about 15 ms. A plan that fails is never remembered.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (names the line), refers
            to an unset variable (names variable and YAML path), or fails validation (lists every
            problem as ``<file>: <dotted.path>: <message>``).
    """
    path = Path(path)
    name = display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{name}: file not found (set WAVEGUARD_CONFIG to the plan file)", file=name
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read the plan file: {exc}", file=name) from exc
    key = (name, text, tuple(sorted(environ.items())))
    with _validated_lock:
        plan = _validated.get(key)
    if plan is None:
        plan = parse_plan(text, environ, source=name)
        with _validated_lock:
            _validated[key] = plan
            while len(_validated) > _VALIDATED_KEPT:
                del _validated[next(iter(_validated))]  # the oldest first
    return plan


# Plans validated from files, by (file name, text, environment); RolloutPlan is frozen.
_VALIDATED_KEPT: Final = 8
_validated: dict[tuple[str, str, tuple[tuple[str, str], ...]], RolloutPlan] = {}
_validated_lock = threading.Lock()


def parse_plan(text: str, environ: Mapping[str, str], *, source: str = "<plan>") -> RolloutPlan:
    """Validate plan ``text``; ``source`` names it in error messages.

    Raises:
        ConfigError: as for ``load_plan``.
    """
    document, lines = _parse_yaml(text, source)
    if not isinstance(document, dict):
        raise _config_error(
            source, [(f"{source}: <root>: expected a mapping of sections (breakGlass, waves, ...)", "")]
        )
    document, missing = interpolate(document, environ)
    if missing:
        raise _config_error(
            source, [(f"{source}: {format_path(p.path)}: {p.message}", _line(lines, p.path)) for p in missing]
        )
    try:
        return RolloutPlan.model_validate(document, context={REQUIRE_SECRETS_FROM_ENV: True})
    except ValidationError as exc:
        raise _config_error(source, _validation_problems(exc, source, lines)) from None


def _config_error(source: str, located: list[tuple[str, str]]) -> ConfigError:
    """One error for all problems: ``problems`` reads ``<file>: <path>: <message>``; the text adds lines."""
    count = len(located)
    heading = f"{source}: invalid rollout plan ({count} problem{'s' if count != 1 else ''})"
    body = [f"  {problem}{where}" for problem, where in located]
    return ConfigError("\n".join([heading, *body]), file=source, problems=[problem for problem, _ in located])


def _validation_problems(
    exc: ValidationError, source: str, lines: dict[tuple[PathPart, ...], int]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == "plan" and isinstance(ctx.get("items"), list):
            problems.extend((f"{source}: {item}", "") for item in ctx["items"])
            continue
        problems.append((f"{source}: {format_path(loc)}: {error['msg']}", _line(lines, loc)))
    return problems


def _line(lines: dict[tuple[PathPart, ...], int], path: tuple[PathPart, ...]) -> str:
    # Report the deepest node of the path that exists in the file (a missing key has no line).
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return f" (line {lines[path[:end]]})"
    return ""


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple[PathPart, ...], int]]:
    loader = _PlanLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[tuple[PathPart, ...], int] = {}
        _index_lines(node, (), lines, source)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        detail = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{source}: YAML syntax error at {where}: {detail}", file=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}", file=source) from None
    finally:
        loader.dispose()


def _index_lines(
    node: yaml.Node, path: tuple[PathPart, ...], lines: dict[tuple[PathPart, ...], int], source: str
) -> None:
    """Record the line of every node and refuse duplicate keys (PyYAML silently keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = format_path((*path, key))
                raise ConfigError(
                    f"{source}: {where}: duplicate key (line {line}; first on line {seen[key]})", file=source
                )
            seen[key] = line
            _index_lines(value_node, (*path, key), lines, source)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, source)

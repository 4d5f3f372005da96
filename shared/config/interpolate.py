"""``${VAR}`` interpolation of the plan file's string values from an environment mapping.

Syntax: ``${VAR}`` (required), ``${VAR:-default}`` (default when VAR is unset or empty, as in
POSIX shells), ``$${...}`` for a literal ``${...}``. A ``$`` not followed by ``{`` is literal.
Values that received anything from the environment become ``EnvStr`` so secret fields can
insist their value came from the environment and not from the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["EnvStr", "InterpolationError", "format_path", "interpolate"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# Either the escape "$${", a well-formed reference, or any other "${" (malformed).
_TOKEN = re.compile(rf"\$\$\{{|\$\{{(?P<name>{_NAME})(?::-(?P<default>[^}}]*))?\}}|\$\{{")

PathPart = str | int


class EnvStr(str):
    """A string whose value came (at least partly) from the environment.

    ``from_default`` is True when a ``:-default`` written in the file supplied any part of it.
    """

    __slots__ = ("from_default", "variables")

    from_default: bool
    variables: tuple[str, ...]

    def __new__(cls, value: str, *, variables: tuple[str, ...], from_default: bool) -> EnvStr:
        obj = super().__new__(cls, value)
        obj.variables = variables
        obj.from_default = from_default
        return obj


class InterpolationError(Exception):
    """A reference that cannot be resolved; ``path`` locates it in the document."""

    def __init__(self, message: str, *, path: tuple[PathPart, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def format_path(path: tuple[PathPart, ...]) -> str:
    """``("waves", 1, "gates")`` -> ``waves[1].gates``; the root is ``<root>``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


_UNRESOLVED_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


def interpolate(document: Any, environ: Mapping[str, str]) -> tuple[Any, list[InterpolationError]]:
    """A copy of ``document`` with every string value interpolated, plus every problem found."""
    problems: list[InterpolationError] = []
    return _walk(document, environ, (), problems), problems


def _walk(
    node: Any, environ: Mapping[str, str], path: tuple[PathPart, ...], problems: list[InterpolationError]
) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, environ, (*path, str(key)), problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, environ, (*path, index), problems) for index, item in enumerate(node)]
    if isinstance(node, str):
        return _interpolate_string(node, environ, path, problems)
    return node


def _interpolate_string(
    text: str, environ: Mapping[str, str], path: tuple[PathPart, ...], problems: list[InterpolationError]
) -> str:
    if "$" not in text:
        return text
    variables: list[str] = []
    used_default = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used_default
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            problems.append(
                InterpolationError(
                    "malformed reference: expected ${NAME} or ${NAME:-default} "
                    "(write $${ for a literal '${')",
                    path=path,
                )
            )
            return token
        variables.append(name)
        value = environ.get(name)
        if value and value.lstrip().startswith(_UNRESOLVED_KEY_VAULT_REFERENCE):
            # App Service passes the reference text through when it cannot read the secret; using it
            # would turn public text into a signing secret.
            problems.append(
                InterpolationError(
                    f"environment variable {name} holds an unresolved Key Vault reference: the Function "
                    "App could not read the secret (check the secret name and the identity's "
                    "Key Vault Secrets User role)",
                    path=path,
                )
            )
            return ""
        if value:
            return value
        default = match.group("default")
        if default is not None:
            used_default = True
            return default
        state = "is not set" if value is None else "is empty"
        problems.append(InterpolationError(f"environment variable {name} {state}", path=path))
        return ""

    result = _TOKEN.sub(replace, text)
    if not variables:
        return result
    return EnvStr(result, variables=tuple(variables), from_default=used_default)

"""infra/ (Bicep, the azd files, the hooks) checked against the code, without a Bicep compiler.

- every app setting the app reads (``os.environ`` reads in shared/, handlers/, function_app.py,
  ``%SETTING%`` binding expressions, the plan's ``${VAR}`` references without a default) is set by
  the templates, or is listed in NOT_SET_BY_THE_TEMPLATE with its reason and documented in
  docs/azure.md;
- every queue (and its ``-poison`` twin) and table named in shared/names.py is created by
  infra/modules/storage.bicep;
- the roles the code needs are exactly the roles assigned: the Azure SDK calls reachable from
  function_app.py (the managed identity) and from cli/main.py (the operator) decide them;
- main.bicep, both postprovision hooks and azure.yaml use the one Graph permission list,
  infra/graph-permissions.json;
- main.parameters.json feeds azd's AZURE_ENV_NAME and AZURE_PRINCIPAL_ID, and resource names
  carry the environment's token and fit Azure's length limits.

Bicep is read with a small comment-, string- and bracket-aware scanner plus regexes; `make
infra-check` also compiles the templates where a Bicep CLI is installed.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from local.minihost.settings import parse_timespan
from shared import names
from shared.config.interpolate import _TOKEN as PLAN_REFERENCE  # the plan's ${VAR} grammar itself
from shared.config.settings import MAX_GRAPH_TIMEOUT_SECONDS

ROOT: Final = Path(__file__).resolve().parents[2]
INFRA: Final = ROOT / "infra"
GUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# ---------------------------------------------------------------------------------------------
# A little Bicep reading
# ---------------------------------------------------------------------------------------------

_OPEN: Final = "([{"
_CLOSE: Final = ")]}"


def _strip_comments(text: str) -> str:
    """``text`` without // and /* */ comments; strings ('...' with \\ escapes, '''...''') kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("'''", i):
            end = text.index("'''", i + 3) + 3
            out.append(text[i:end])
            i = end
        elif text[i] == "'":
            j = i + 1
            while text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, bracket depth before it) for each character outside string literals."""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "'":
            j = i + 1
            while text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        yield i, char, depth
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        i += 1


def _expression_at(text: str, start: int) -> str:
    """The expression starting at ``start``: up to the end of its line at bracket depth 0."""
    for index, char, depth in _scan(text, start):
        if char == "\n" and depth == 0:
            return text[start:index].strip()
        if char in _CLOSE and depth == 0:  # closing bracket of an enclosing construct
            return text[start:index].strip()
    return text[start:].strip()


def _block_at(text: str, start: int) -> str:
    """From the bracket at or after ``start`` to its matching closing bracket, inclusive."""
    opened = None
    for index, char, depth in _scan(text, start):
        if opened is None:
            if char in _OPEN:
                opened = index
            continue
        if char in _CLOSE and depth == 1:
            return text[opened : index + 1]
    raise AssertionError(f"unbalanced brackets after {text[start : start + 60]!r}")


def _body_at(text: str, start: int) -> str:
    """A declaration's body after its ``=``: ``{...}``, ``[for ...]``, or the block after ``if (...)``."""
    rest = text[start:]
    if re.match(r"if\s*\(", rest):
        condition = _block_at(text, start)
        start = text.index(condition, start) + len(condition)
    return _block_at(text, start)


def _split_top(inner: str, separators: str) -> list[str]:
    """``inner`` split at depth-0 separators (outside strings); blank items dropped."""
    items: list[str] = []
    last = 0
    for index, char, depth in _scan(inner):
        if char in separators and depth == 0:
            items.append(inner[last:index])
            last = index + 1
    items.append(inner[last:])
    return [item.strip() for item in items if item.strip()]


def _ternary(expr: str) -> tuple[str, str, str] | None:
    """``cond ? a : b`` at depth 0 as its three parts, else None."""
    question = None
    nested = 0
    for index, char, depth in _scan(expr):
        if depth != 0:
            continue
        if char == "?" and expr[index + 1 : index + 2] not in ("?", ".", "["):
            if question is None:
                question = index
            else:
                nested += 1
        elif char == ":" and question is not None:
            if nested == 0:
                return expr[:question].strip(), expr[question + 1 : index].strip(), expr[index + 1 :].strip()
            nested -= 1
    return None


def _string_literal(expr: str, *, interpolated: bool = False) -> str | None:
    """The value of a '...' literal; with ``interpolated``, its text with ``${...}`` left in."""
    pattern = r"'((?:[^'\\]|\\.)*)'" if interpolated else r"'((?:[^'\\$]|\\.)*)'"
    match = re.fullmatch(pattern, expr.strip())
    return match.group(1).replace("\\'", "'") if match else None


@dataclass(frozen=True)
class Bicep:
    """One .bicep file, comments stripped."""

    path: Path
    text: str = field(repr=False)

    @classmethod
    def load(cls, relative: str) -> Bicep:
        return cls(INFRA / relative, _strip_comments((INFRA / relative).read_text("utf-8")))

    def var(self, name: str) -> str | None:
        match = re.search(rf"^\s*var\s+{re.escape(name)}\s*=\s*", self.text, re.MULTILINE)
        return _expression_at(self.text, match.end()) if match else None

    def params(self) -> dict[str, str | None]:
        """Each parameter's default expression (None: no default)."""
        found: dict[str, str | None] = {}
        for match in re.finditer(r"^\s*param\s+(\w+)\s+[^=\n]+?(=\s*)?$", self.text, re.MULTILINE):
            found[match.group(1)] = None
        for match in re.finditer(r"^\s*param\s+(\w+)\s+[^=\n]+?=\s*", self.text, re.MULTILINE):
            found[match.group(1)] = _expression_at(self.text, match.end())
        return found

    def decorators(self, param: str) -> dict[str, str]:
        """The decorators right above ``param NAME``: {'minLength': '3', ...}."""
        lines = self.text[: self.text.index(f"param {param} ")].rstrip().splitlines()
        found: dict[str, str] = {}
        block: list[str] = []
        for line in reversed(lines):
            if not line.strip():
                break
            block.insert(0, line.strip())
        for match in re.finditer(r"@(\w+)\(([^()]*)\)", "\n".join(block)):
            found[match.group(1)] = match.group(2).strip()
        return found

    def declarations(self, keyword: str, type_prefix: str = "") -> dict[str, str]:
        """``resource``/``module`` symbols whose type or path starts with ``type_prefix``: their bodies."""
        found: dict[str, str] = {}
        pattern = rf"^\s*{keyword}\s+(\w+)\s+'{re.escape(type_prefix)}[^']*'(?:\s+existing)?\s*=\s*"
        for match in re.finditer(pattern, self.text, re.MULTILINE):
            found[match.group(1)] = _body_at(self.text, match.end())
        return found

    def module_params(self, module_path: str) -> dict[str, str]:
        """main.bicep's params for the module declared with ``module_path``."""
        match = re.search(rf"^module\s+\w+\s+'{re.escape(module_path)}'\s*=\s*", self.text, re.MULTILINE)
        assert match, f"{self.path.name} declares no module {module_path}"
        body = _body_at(self.text, match.end())
        params = re.search(r"\bparams:\s*", body)
        assert params, f"module {module_path} has no params"
        return _object_entries(_block_at(body, params.end()))

    def outputs(self) -> dict[str, str]:
        return {
            m.group(1): _expression_at(self.text, m.end())
            for m in re.finditer(r"^output\s+(\w+)\s+[^=\n]+=\s*", self.text, re.MULTILINE)
        }


def _object_entries(literal: str) -> dict[str, str]:
    """``{ key: value ... }`` as {key: value expression}."""
    entries: dict[str, str] = {}
    for item in _split_top(literal.strip()[1:-1], "\n,"):
        key, _, value = item.partition(":")
        entries[key.strip().strip("'")] = value.strip()
    return entries


def _object_keys(file: Bicep, expr: str, callers: Mapping[str, tuple[Bicep, str]]) -> set[str]:
    """The keys an object expression can have (both sides of ternaries). ``callers`` gives a
    module parameter's argument: {param: (file, expression)}."""
    expr = expr.strip()
    if (parts := _ternary(expr)) is not None:
        return _object_keys(file, parts[1], callers) | _object_keys(file, parts[2], callers)
    if expr.startswith("{"):
        return set(_object_entries(expr))
    if match := re.fullmatch(r"union\((.*)\)", expr, re.DOTALL):
        return set().union(*(_object_keys(file, arg, callers) for arg in _split_top(match.group(1), ",")))
    if match := re.fullmatch(r"toObject\(items\((\w+)\),.*\)", expr, re.DOTALL):
        return _object_keys(file, match.group(1), callers)
    if re.fullmatch(r"\w+", expr):
        if (value := file.var(expr)) is not None:
            return _object_keys(file, value, callers)
        if expr in callers:
            caller, argument = callers[expr]
            return _object_keys(caller, argument, {})
        default = file.params().get(expr)
        if default is not None:
            return _object_keys(file, default, {})
    raise AssertionError(f"{file.path.name}: cannot tell the keys of {expr!r}")


def _strings(file: Bicep, expr: str) -> list[str]:
    """The string values an expression can produce: literals, arrays, vars, ``obj.key``, ternaries."""
    expr = expr.strip()
    if (parts := _ternary(expr)) is not None:
        return _strings(file, parts[1]) + _strings(file, parts[2])
    if (literal := _string_literal(expr)) is not None:
        return [literal]
    if expr.startswith("["):
        return [value for item in _split_top(expr[1:-1], "\n,") for value in _strings(file, item)]
    if match := re.fullmatch(r"(\w+)\.(\w+)", expr):
        obj = file.var(match.group(1))
        assert obj is not None, f"{file.path.name}: no var {match.group(1)}"
        return _strings(file, _object_entries(obj)[match.group(2)])
    if re.fullmatch(r"\w+", expr) and (value := file.var(expr)) is not None:
        return _strings(file, value)
    raise AssertionError(f"{file.path.name}: cannot tell the strings of {expr!r}")


@cache
def _bicep(relative: str) -> Bicep:
    return Bicep.load(relative)


def _main() -> Bicep:
    return _bicep("main.bicep")


# ---------------------------------------------------------------------------------------------
# App settings: what the code reads, what the templates set
# ---------------------------------------------------------------------------------------------

# Read by the code, deliberately not set by the template. Each is documented in docs/azure.md.
NOT_SET_BY_THE_TEMPLATE: Final[dict[str, str]] = {
    "AzureWebJobsStorage": "a connection string (Azurite locally); shared keys are off in Azure, where the "
    "identity-based AzureWebJobsStorage__* settings stand in",
    "AzureWebJobsStorage__accountName": "an alternative to the __queueServiceUri/__tableServiceUri "
    "the template sets",
    "WAVEGUARD_WARM_START": "optional: the warm start is on unless it is 'false'",
    "WAVEGUARD_IO_THREADS": "optional: 32 threads unless set",
    "WEBSITE_INSTANCE_ID": "set by the platform on every Azure worker",
    "OTEL_TRACES_SAMPLER": "optional: OpenTelemetry's standard sampler choice; unset keeps every trace",
    "REQUESTS_CA_BUNDLE": "optional: the CA bundle storage connections are verified against (certifi's "
    "unless set), as requests reads it",
    "CURL_CA_BUNDLE": "optional: read where REQUESTS_CA_BUNDLE is not set, as requests reads it",
}
# Settings that must never be in a Flex Consumption app's settings (or, for the first, ever: it
# would need shared keys).
MUST_NOT_BE_SET: Final = (
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
)
# Reads whose variable name is only known at run time; checked another way.
DYNAMIC_READS: Final[dict[str, str]] = {
    "shared/config/interpolate.py": "the plan's ${VAR} references: checked from the plan file",
}
_ENV_MAPPINGS: Final = {"env", "environ"}


def _app_sources() -> list[Path]:
    files = [ROOT / "function_app.py"]
    for package in ("shared", "handlers"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants: dict[str, str] = {}
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants[target.id] = value.value
    return constants


def _is_env_mapping(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _ENV_MAPPINGS
    return isinstance(node, ast.Attribute) and node.attr == "environ"


@dataclass
class _Reads:
    names: dict[str, str] = field(default_factory=dict)  # setting -> where it is read
    unresolved: list[str] = field(default_factory=list)


def _resolve_name(node: ast.expr, constants: Mapping[str, str]) -> str | None:
    """The string a name argument holds: a literal, a module constant, or an f-string of those."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = [
            _resolve_name(v.value if isinstance(v, ast.FormattedValue) else v, constants) for v in node.values
        ]
        return None if None in parts else "".join(p for p in parts if p is not None)
    return None


def _name_argument(node: ast.AST, helpers: Mapping[str, int]) -> ast.expr | None:
    """The expression naming the variable, when ``node`` reads the environment."""
    if isinstance(node, ast.Subscript) and _is_env_mapping(node.value) and isinstance(node.ctx, ast.Load):
        return node.slice
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and _is_env_mapping(func.value) and node.args:
        return node.args[0]
    if isinstance(func, ast.Attribute) and func.attr == "getenv" and node.args:
        return node.args[0]
    if isinstance(func, ast.Name) and func.id in helpers and len(node.args) > helpers[func.id]:
        return node.args[helpers[func.id]]
    return None


def _reads_in(path: Path, reads: _Reads) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    constants = _module_constants(tree)
    where = path.relative_to(ROOT).as_posix()
    # Functions that read the variable their parameter names (_optional(env, name)), with that
    # parameter's position; found until none is new (_choice passes its own name to _optional).
    helpers: dict[str, int] = {}
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    changed = True
    while changed:
        changed = False
        for function in functions:
            params = [a.arg for a in function.args.args]
            for node in ast.walk(function):
                argument = _name_argument(node, helpers)
                if isinstance(argument, ast.Name) and argument.id in params and function.name not in helpers:
                    helpers[function.name] = params.index(argument.id)
                    changed = True
    passing_on = {
        id(node)
        for function in functions
        if function.name in helpers
        for node in ast.walk(function)
        if isinstance(arg := _name_argument(node, helpers), ast.Name)
        and arg.id in [a.arg for a in function.args.args]
    }
    for node in ast.walk(tree):
        argument = _name_argument(node, helpers)
        if argument is None or id(node) in passing_on:
            continue
        if (name := _resolve_name(argument, constants)) is not None:
            reads.names.setdefault(name, f"{where}:{getattr(node, 'lineno', 0)}")
        elif where not in DYNAMIC_READS:
            reads.unresolved.append(f"{where}:{getattr(node, 'lineno', 0)}")


def _settings_read_by_the_app() -> _Reads:
    """Every environment variable the app reads: ``env.get(X)``, ``os.environ.get(X)``,
    ``os.getenv(X)``, ``env[X]``, and helpers that pass their parameter on (``_optional(env, X)``)."""
    reads = _Reads()
    for path in _app_sources():
        _reads_in(path, reads)
    return reads


def _binding_settings() -> dict[str, str]:
    """``%SETTING%`` expressions in binding arguments (the host resolves them from app settings)."""
    found: dict[str, str] = {}
    for path in _app_sources():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if match := re.fullmatch(r"%([A-Za-z_][A-Za-z0-9_]*)%", node.value):
                found.setdefault(match.group(1), f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    return found


def _plan_references() -> tuple[dict[str, bool], str]:
    """{VAR: has a default} for the plan deployed to Azure (WAVEGUARD_CONFIG), and its path."""
    config = _string_literal(_main().params()["waveguardConfig"] or "")
    assert config, "main.bicep: waveguardConfig needs a literal default (the plan in the package)"
    document = yaml.safe_load((ROOT / config).read_text("utf-8"))
    references: dict[str, bool] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            for match in PLAN_REFERENCE.finditer(node):
                if match.group("name"):
                    has_default = match.group("default") is not None
                    references[match.group("name")] = (
                        references.get(match.group("name"), True) and has_default
                    )

    walk(document)
    return references, config


def _template_app_settings() -> set[str]:
    """Every app setting the Function App can get from the templates."""
    functionapp = _bicep("modules/functionapp.bicep")
    settings = functionapp.declarations("resource", "config")
    body = next((b for b in settings.values() if re.search(r"\bname:\s*'appsettings'", b)), None)
    assert body, "functionapp.bicep: no appsettings config resource"
    properties = re.search(r"\bproperties:\s*", body)
    assert properties
    main = _main()
    callers = {
        param: (main, argument) for param, argument in main.module_params("modules/functionapp.bicep").items()
    }
    return _object_keys(functionapp, _expression_at(body, properties.end()), callers)


def test_every_setting_the_app_reads_is_set_by_the_template_or_documented_as_optional() -> None:
    reads = _settings_read_by_the_app()
    assert not reads.unresolved, f"cannot tell which setting these read: {reads.unresolved}"
    assert {"GRAPH_BASE_URL", "AzureWebJobsStorage__queueServiceUri", "WAVEGUARD_IO_THREADS"} <= set(
        reads.names
    )
    template = _template_app_settings()
    plan, plan_path = _plan_references()
    required = {
        **{name: where for name, where in reads.names.items() if name not in NOT_SET_BY_THE_TEMPLATE},
        **{name: where for name, where in _binding_settings().items()},
        **{name: f"{plan_path} (no default)" for name, has_default in plan.items() if not has_default},
    }
    missing = {name: where for name, where in required.items() if name not in template}
    assert not missing, f"read by the app but not set by infra/ (functionapp.bicep app settings): {missing}"


def test_settings_left_out_of_the_template_are_read_documented_and_really_left_out() -> None:
    reads = _settings_read_by_the_app().names
    template = _template_app_settings()
    docs = (ROOT / "docs" / "azure.md").read_text("utf-8")
    for name, reason in NOT_SET_BY_THE_TEMPLATE.items():
        assert name in reads, f"{name} ({reason}) is no longer read by the code: drop it from the list"
        assert f"`{name}`" in docs, f"docs/azure.md does not document {name} ({reason})"
    for name in MUST_NOT_BE_SET:
        assert name not in template, f"infra/ sets {name}, which a Flex Consumption app must not have"


def test_every_binding_setting_is_found_in_the_source() -> None:
    # The scan test_every_setting_... relies on: the schedules of the four timers.
    assert {
        "WAVEGUARD_WAVE_SCHEDULE",
        "WAVEGUARD_RISK_SCHEDULE",
        "WAVEGUARD_SUBSCRIPTION_SCHEDULE",
        "WAVEGUARD_GROUP_RESYNC_SCHEDULE",
    } <= set(_binding_settings())


def test_the_graph_timeout_parameter_allows_what_the_app_allows_and_fits_the_function_timeout() -> None:
    main = _main()
    setting = re.search(r"^\s*GRAPH_TIMEOUT_SECONDS:\s*string\((\w+)\)\s*$", main.text, re.MULTILINE)
    assert setting, "main.bicep sets GRAPH_TIMEOUT_SECONDS from no int parameter"
    decorators = main.decorators(setting.group(1))
    assert "maxValue" in decorators, f"main.bicep: param {setting.group(1)} has no @maxValue"
    assert float(decorators["maxValue"]) == MAX_GRAPH_TIMEOUT_SECONDS
    host = json.loads((ROOT / "host.json").read_text("utf-8"))
    function_timeout = parse_timespan(host["functionTimeout"], where="host.json functionTimeout")
    assert function_timeout > MAX_GRAPH_TIMEOUT_SECONDS


# ---------------------------------------------------------------------------------------------
# Queues and tables
# ---------------------------------------------------------------------------------------------


def _storage_queues_and_tables() -> tuple[set[str], set[str]]:
    storage = _bicep("modules/storage.bicep")
    resources = storage.declarations("resource", "Microsoft.Storage/storageAccounts@")
    account = next(iter(resources.values()))
    queue_loop = re.search(r"resource\s+\w+\s+'queues'\s*=\s*\[for\s+\w+\s+in\s+(\w+)\s*:", account)
    table_loop = re.search(r"resource\s+\w+\s+'tables'\s*=\s*\[for\s+\w+\s+in\s+(\w+)\s*:", account)
    assert queue_loop, "storage.bicep: queues are no longer created in a loop"
    assert table_loop, "storage.bicep: tables are no longer created in a loop"
    queues = storage.var(queue_loop.group(1)) or ""
    twins = re.fullmatch(
        r"flatten\(map\((\w+),\s*(\w+)\s*=>\s*\[\s*\2\s*,\s*'\$\{\2\}-poison'\s*\]\)\)", queues
    )
    if twins:  # every work queue and its -poison twin
        base = _strings(storage, twins.group(1))
        created = {*base, *(f"{q}-poison" for q in base)}
    else:
        created = set(_strings(storage, queue_loop.group(1)))
    return created, set(_strings(storage, table_loop.group(1)))


def test_every_queue_and_poison_queue_the_code_names_is_created() -> None:
    queues, _ = _storage_queues_and_tables()
    expected = {*names.ALL_QUEUES, *(names.poison(q) for q in names.ALL_QUEUES)}
    assert expected - queues == set(), f"storage.bicep does not create {sorted(expected - queues)}"
    assert queues - expected == set(), (
        f"storage.bicep creates queues the code never uses: {sorted(queues - expected)}"
    )


def test_every_table_the_code_names_is_created() -> None:
    _, tables = _storage_queues_and_tables()
    expected = {value for key, value in vars(names).items() if key.startswith("TABLE_")}
    assert expected == tables, f"shared/names.py tables {sorted(expected)}, storage.bicep {sorted(tables)}"


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------

# Built-in role definition ids (Azure built-in roles reference; the same in every tenant).
ROLE_IDS: Final[dict[str, str]] = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
}
_QUEUE, _TABLE, _BLOB = (
    "Storage Queue Data Contributor",
    "Storage Table Data Contributor",
    "Storage Blob Data Contributor",
)
# Every request-making method of the storage SDK clients: the role whose actions Azure Storage
# checks for it with Entra ID (the "Permissions for calling data operations" tables). Queue and
# table contributors are needed anyway (the code creates queues and tables); the service
# properties need Microsoft.Storage/storageAccounts/{queue,table,blob}Services/read, which no data
# role has: Reader on the account.
_QUEUE_CALLS: Final = (
    "send_message",
    "receive_message",
    "receive_messages",
    "peek_messages",
    "delete_message",
    "update_message",
    "clear_messages",
    "create_queue",
    "delete_queue",
    "list_queues",
    "get_queue_properties",
    "set_queue_metadata",
)
_TABLE_CALLS: Final = (
    "create_table",
    "create_table_if_not_exists",
    "delete_table",
    "list_tables",
    "query_tables",
    "create_entity",
    "upsert_entity",
    "update_entity",
    "delete_entity",
    "get_entity",
    "list_entities",
    "query_entities",
    "submit_transaction",
)
_BLOB_CALLS: Final = (
    "upload_blob",
    "download_blob",
    "delete_blob",
    "list_blobs",
    "create_container",
    "get_blob_properties",
)
STORAGE_CALL_ROLES: Final[dict[str, str]] = {
    **dict.fromkeys(_QUEUE_CALLS, _QUEUE),
    **dict.fromkeys(_TABLE_CALLS, _TABLE),
    **dict.fromkeys(_BLOB_CALLS, _BLOB),
    **dict.fromkeys(("get_service_properties", "get_service_stats", "set_service_properties"), "Reader"),
}
# SDK methods that make no request (building clients, closing them).
_LOCAL_SDK_METHODS: Final = re.compile(r"^(close|get_\w+_client|from_\w+)$")
# What the Functions host itself needs of the app's identity, whatever the code does: identity-based
# AzureWebJobsStorage (blob leases, timers, keys) plus the Flex deployment container, and the
# queue triggers.
HOST_ROLES: Final = ("Storage Blob Data Owner", "Storage Queue Data Contributor")


def _sdk_methods() -> set[str]:
    """Public methods of the storage SDK clients the code uses."""
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.queue import QueueClient, QueueServiceClient

    methods: set[str] = set()
    for client in (QueueClient, QueueServiceClient, TableClient, TableServiceClient):
        for name, member in inspect.getmembers(client):
            if not name.startswith("_") and inspect.isfunction(member):
                methods.add(name)
    return methods


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_closure(entry: Path) -> set[Path]:
    """The repository's modules ``entry`` imports, directly or not (imports inside functions too)."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = path.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for module in modules:
                parts = module.split(".")
                for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                    if (found := _module_file(".".join(parts[:depth]))) is not None and found not in seen:
                        todo.append(found)
    return seen


def _storage_calls(entry: Path) -> dict[str, str]:
    """{SDK method: where} for storage SDK calls in the code ``entry`` reaches."""
    sdk = _sdk_methods()
    calls: dict[str, str] = {}
    for path in sorted(_imports_closure(entry)):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                method = node.func.attr
                if method in sdk or method in STORAGE_CALL_ROLES:
                    calls.setdefault(method, f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    return calls


def _assigned_roles() -> set[tuple[str, str, str]]:
    """(module file, 'app' | 'operator', role definition id) for every role assignment."""
    main = _main()
    assigned: set[tuple[str, str, str]] = set()
    for module_path in ("modules/storage.bicep", "modules/keyvault.bicep", "modules/monitoring.bicep"):
        module = _bicep(module_path)
        arguments = main.module_params(module_path)
        for body in module.declarations("resource", "Microsoft.Authorization/roleAssignments@").values():
            loop = re.match(r"\[\s*for\s+(\w+)\s+in\s+(\w+)\s*:", body)
            principal = re.search(r"\bprincipalId:\s*(\w+)", body)
            role = re.search(r"roleDefinitionId:\s*subscriptionResourceId\(\s*'[^']+',\s*([\w.]+)\s*\)", body)
            assert principal, f"{module_path}: a role assignment without principalId"
            assert role, f"{module_path}: a role assignment whose role is not a subscriptionResourceId"
            role_ids = _strings(
                module, loop.group(2) if loop and role.group(1) == loop.group(1) else role.group(1)
            )
            argument = arguments.get(principal.group(1), "")
            who = {"identity.outputs.principalId": "app", "operatorPrincipalId": "operator"}.get(argument)
            assert who, f"{module_path}: role assignment for {principal.group(1)} = {argument!r}"
            assigned |= {(module_path, who, role_id) for role_id in role_ids}
    return assigned


def _needed_roles() -> tuple[set[tuple[str, str, str]], dict[str, str]]:
    """The roles the code and the templates' own settings need, with the reason for each."""
    needed: dict[tuple[str, str, str], str] = {}

    def need(module: str, who: str, role: str, why: str) -> None:
        needed.setdefault((module, who, ROLE_IDS[role]), f"{who} {role} on {module}: {why}")

    for who, entry in (("app", ROOT / "function_app.py"), ("operator", ROOT / "cli" / "main.py")):
        for method, where in _storage_calls(entry).items():
            if _LOCAL_SDK_METHODS.match(method):
                continue
            role = STORAGE_CALL_ROLES.get(method)
            assert role, (
                f"{where} calls the storage SDK's {method}: add it to STORAGE_CALL_ROLES with its role"
            )
            need("modules/storage.bicep", who, role, f"{method} ({where})")
    for role in HOST_ROLES:
        need("modules/storage.bicep", "app", role, "the Functions host's identity-based storage")
    if "DisableLocalAuth: true" in _bicep("modules/monitoring.bicep").text:
        need(
            "modules/monitoring.bicep", "app", "Monitoring Metrics Publisher", "telemetry without local auth"
        )
    if "@Microsoft.KeyVault(" in _bicep("modules/functionapp.bicep").text:
        need(
            "modules/keyvault.bicep", "app", "Key Vault Secrets User", "Key Vault references in app settings"
        )
    if "az keyvault secret set" in (INFRA / "README.md").read_text("utf-8"):
        need(
            "modules/keyvault.bicep",
            "operator",
            "Key Vault Secrets Officer",
            "infra/README.md has them set secrets",
        )
    return set(needed), {f"{m}|{w}|{r}": why for (m, w, r), why in needed.items()}


def test_roles_assigned_are_exactly_the_roles_the_code_needs() -> None:
    needed, why = _needed_roles()
    assigned = _assigned_roles()
    role_names = {role_id: name for name, role_id in ROLE_IDS.items()}

    def show(items: set[tuple[str, str, str]]) -> list[str]:
        return sorted(f"{who} {role_names.get(r, r)} on {module}" for module, who, r in items)

    missing = needed - assigned
    assert not missing, "roles the code needs but infra/ does not assign: " + "; ".join(
        why[f"{m}|{w}|{r}"] for m, w, r in sorted(missing)
    )
    assert not assigned - needed, f"roles assigned that nothing needs: {show(assigned - needed)}"


def test_the_code_reaches_the_storage_calls_the_role_check_relies_on() -> None:
    app = _storage_calls(ROOT / "function_app.py")
    operator = _storage_calls(ROOT / "cli" / "main.py")
    assert {"send_message", "create_table_if_not_exists", "get_service_properties"} <= set(app)
    assert {"send_message", "upsert_entity", "get_service_properties"} <= set(operator)


# ---------------------------------------------------------------------------------------------
# Graph permissions: one list
# ---------------------------------------------------------------------------------------------

GRAPH_LIST: Final = INFRA / "graph-permissions.json"
# The line format the POSIX hook reads with sed (one entry per line).
_HOOK_LINE: Final = re.compile(r'^ *\{"permission": "([^"]+)", "appRoleId": "([0-9a-f-]{36})", "parameter": ')


def _graph_list() -> list[dict[str, Any]]:
    entries = json.loads(GRAPH_LIST.read_text("utf-8"))
    assert isinstance(entries, list)
    return entries


def _selected(values: Mapping[str, object]) -> list[str]:
    """The documented rule (infra/README.md): an entry applies when its parameter is null or has its value."""
    return [
        e["permission"]
        for e in _graph_list()
        if e["parameter"] is None or values[e["parameter"]] == e["value"]
    ]


def _bicep_defaults(names_: list[str]) -> dict[str, object]:
    params = _main().params()
    values: dict[str, object] = {}
    for name in names_:
        default = params[name] or ""
        values[name] = {"true": True, "false": False}.get(default, _string_literal(default))
    return values


def test_graph_permission_list_is_well_formed_and_one_entry_per_line() -> None:
    entries = _graph_list()
    params = _main().params()
    seen: set[str] = set()
    for entry in entries:
        assert set(entry) == {"permission", "appRoleId", "parameter", "value"}, entry
        assert GUID.match(entry["appRoleId"]), entry
        assert entry["permission"] not in seen, f"{entry['permission']} twice"
        seen.add(entry["permission"])
        assert (entry["parameter"] is None) == (entry["value"] is None), entry
        assert entry["parameter"] is None or entry["parameter"] in params, f"main.bicep has no param {entry}"
    lines = [line for line in GRAPH_LIST.read_text("utf-8").splitlines() if '"permission"' in line]
    assert [_HOOK_LINE.match(line) is not None for line in lines] == [True] * len(entries), (
        "infra/graph-permissions.json: keep one entry per line, keys in the order permission, appRoleId, "
        "parameter, value (infra/hooks/postprovision.sh reads it with sed)"
    )


def test_main_bicep_selects_graph_permissions_from_the_list_by_every_parameter_it_names() -> None:
    main = _main()
    assert re.search(r"loadJsonContent\('graph-permissions\.json'\)", main.text)
    selection = main.var("graphPermissions") or ""
    for parameter in {e["parameter"] for e in _graph_list() if e["parameter"]}:
        assert re.search(rf"p\.parameter == '{parameter}' && p\.value == {parameter}\b", selection), (
            f"main.bicep's graphPermissions filter ignores {parameter}"
        )
    grant = main.module_params("modules/graph-permissions.bicep")
    assert grant["permissions"] == "graphPermissions"
    # By name in the tenant's Graph service principal (a wrong recorded id cannot grant another role).
    assert re.search(
        r"appRoleId:\s*\(filter\(microsoftGraph\.appRoles, r => r\.value == p\.permission\)\[0\]\)\.id",
        _bicep("modules/graph-permissions.bicep").text,
    )
    for hook in ("postprovision.sh", "postprovision.ps1"):  # the hooks check the ids before granting
        assert "appRoles[]" in (INFRA / "hooks" / hook).read_text("utf-8"), hook
    assert main.params()["grantGraphPermissions"] == "false", "grantGraphPermissions must default to false"
    outputs = main.outputs()
    assert outputs["WAVEGUARD_GRAPH_PERMISSIONS"] == "join(graphPermissionNames, ' ')"
    assert main.var("graphPermissionNames") == "map(graphPermissions, p => p.permission)"


def test_graph_permission_defaults_match_docs_permissions_md() -> None:
    docs = (ROOT / "docs" / "permissions.md").read_text("utf-8")
    summary = docs[docs.index("## Summary") : docs.index("## Per feature")]
    for entry in _graph_list():
        assert f"`{entry['permission']}`" in summary, (
            f"docs/permissions.md does not list {entry['permission']}"
        )
    parameters = sorted({e["parameter"] for e in _graph_list() if e["parameter"]})
    defaults = _selected(_bicep_defaults(parameters))
    assert "UserAuthMethod-TAP.ReadWrite.All" in defaults
    assert "UserAuthenticationMethod.ReadWrite.All" not in defaults
    assert "IdentityRiskyUser.Read.All" in defaults
    assert "User.RevokeSessions.All" not in defaults


def test_hooks_read_the_same_list_and_only_outputs_main_bicep_has() -> None:
    outputs = set(_main().outputs())
    hook_options = {"WAVEGUARD_GRAPH_GRANT"}  # azd env set by the user, not an output
    for hook in ("postprovision.sh", "postprovision.ps1"):
        text = (INFRA / "hooks" / hook).read_text("utf-8")
        assert "graph-permissions.json" in text, f"{hook} does not read infra/graph-permissions.json"
        used = set(re.findall(r"WAVEGUARD_[A-Z_]+", text)) - hook_options
        assert {"WAVEGUARD_GRAPH_PERMISSIONS", "WAVEGUARD_IDENTITY_PRINCIPAL_ID"} <= used, hook
        assert used <= outputs, f"{hook} reads {sorted(used - outputs)}, which main.bicep does not output"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")
def _run_posix_hook(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """infra/hooks/postprovision.sh with exactly ``environment``, its output captured."""
    return subprocess.run(
        ["sh", str(INFRA / "hooks" / "postprovision.sh")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_posix_hook_prints_every_selected_permission_with_its_app_role_id() -> None:
    parameters = sorted({e["parameter"] for e in _graph_list() if e["parameter"]})
    wanted = _selected(_bicep_defaults(parameters))
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "WAVEGUARD_IDENTITY_PRINCIPAL_ID": "11111111-2222-3333-4444-555555555555",
        "WAVEGUARD_GRAPH_PERMISSIONS": " ".join(wanted),
        "WAVEGUARD_GRAPH_GRANT": "print",
    }
    run = _run_posix_hook(environment)
    assert run.returncode == 0, run.stderr
    ids = {e["permission"]: e["appRoleId"] for e in _graph_list()}
    for permission in wanted:
        assert re.search(rf"{re.escape(permission)} +app role id {ids[permission]}", run.stdout), permission
        assert f'appRoleId\\":\\"{ids[permission]}\\"}}"   # {permission}' in run.stdout, permission
    assert "11111111-2222-3333-4444-555555555555" in run.stdout


@pytest.mark.parametrize("principal", ["$(id>/tmp/pwned)", "not-a-guid", "11111111-2222-3333-4444-5555555"])
def test_posix_hook_refuses_a_principal_id_that_is_not_a_guid(principal: str) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "WAVEGUARD_IDENTITY_PRINCIPAL_ID": principal,
        "WAVEGUARD_GRAPH_PERMISSIONS": "User.Read.All",
        "WAVEGUARD_GRAPH_GRANT": "print",
    }
    run = _run_posix_hook(environment)
    assert run.returncode == 1
    assert "is not a GUID" in run.stderr
    assert principal not in run.stdout


def test_azure_yaml_runs_the_hooks_with_sh_and_pwsh() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text("utf-8"))
    hook = project["hooks"]["postprovision"]
    assert hook["posix"] == {"shell": "sh", "run": "./infra/hooks/postprovision.sh"}
    assert hook["windows"] == {"shell": "pwsh", "run": "./infra/hooks/postprovision.ps1"}
    for side in ("posix", "windows"):
        assert (ROOT / hook[side]["run"]).is_file()
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}


# ---------------------------------------------------------------------------------------------
# azd parameters and resource names
# ---------------------------------------------------------------------------------------------


def _azd_parameters() -> dict[str, str]:
    document = json.loads((INFRA / "main.parameters.json").read_text("utf-8"))
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def test_main_parameters_feed_azds_environment_name_and_signed_in_principal() -> None:
    values = _azd_parameters()
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["operatorPrincipalId"] == "${AZURE_PRINCIPAL_ID}"
    assert values["operatorPrincipalType"] == "${AZURE_PRINCIPAL_TYPE=User}"


def test_main_parameters_defaults_are_the_templates_defaults() -> None:
    params = _main().params()
    for name, value in _azd_parameters().items():
        assert name in params, f"main.parameters.json sets {name}, which main.bicep does not declare"
        match = re.fullmatch(r"\$\{(\w+)(?:=([^}]*))?\}", value)
        assert match, f"{name}: {value!r} is not an azd ${{VAR}} or ${{VAR=default}} reference"
        default, bicep_default = match.group(2), params[name]
        if default is not None and bicep_default is not None:
            literal = _string_literal(bicep_default)
            assert default == (literal if literal is not None else bicep_default), (
                f"{name}: azd default {default!r}, main.bicep default {bicep_default}"
            )


# Azure's limits for each name (resource-name rules), and whether only lower-case letters and
# digits are allowed.
NAME_LIMITS: Final[dict[str, tuple[str, str, int, int, bool]]] = {
    # names key: (module, its name param, min, max, lower-case letters and digits only)
    "identity": ("modules/identity.bicep", "name", 3, 128, False),
    "logAnalytics": ("modules/monitoring.bicep", "logAnalyticsName", 4, 63, False),
    "appInsights": ("modules/monitoring.bicep", "appInsightsName", 1, 260, False),
    "storage": ("modules/storage.bicep", "name", 3, 24, True),
    "keyVault": ("modules/keyvault.bicep", "name", 3, 24, True),
    "plan": ("modules/functionapp.bicep", "planName", 1, 60, False),
    "functionApp": ("modules/functionapp.bicep", "appName", 2, 60, False),
}
_TOKEN_LENGTH: Final = 13  # uniqueString()


def _length_range(template: str) -> tuple[int, int]:
    """(shortest, longest) a name template can be: literals, ${token}, ${var} where var = take(x, N)."""
    main = _main()
    shortest = longest = 0
    for literal, variable in re.findall(r"([^$]+)|\$\{(\w+)\}", template):
        if literal:
            shortest += len(literal)
            longest += len(literal)
        elif variable == "token":
            shortest += _TOKEN_LENGTH
            longest += _TOKEN_LENGTH
        else:
            taken = re.fullmatch(r"take\(.*,\s*(\d+)\)", main.var(variable) or "", re.DOTALL)
            assert taken, f"main.bicep: ${{{variable}}} in a name must be a take(..., N)"
            longest += int(taken.group(1))
    return shortest, longest


def test_names_carry_the_environment_token_and_fit_azures_limits() -> None:
    main = _main()
    assert main.var("token") == "uniqueString(subscription().id, resourceGroup().id, environmentName)"
    decorators = main.decorators("environmentName")  # azd's names: ^[a-zA-Z0-9-\(\)_\.]{1,64}$
    assert (decorators.get("minLength"), decorators.get("maxLength")) == ("1", "64")
    compact = main.var("envCompact") or ""
    assert compact.startswith("toLower("), "envCompact must be lower-case"
    for char in "-_.()":
        assert f"'{char}', '')" in compact, f"envCompact keeps {char!r} (azd environment names may have it)"
    names_ = _object_entries(main.var("names") or "")
    assert set(names_) == set(NAME_LIMITS)
    for key, (module_path, param, low, high, alnum) in NAME_LIMITS.items():
        template = _string_literal(names_[key], interpolated=True)
        assert template, f"names.{key} must be a string"
        assert "${token}" in template, f"names.{key} must end in the environment's ${{token}}"
        shortest, longest = _length_range(template)
        assert low <= shortest, f"names.{key}: as short as {shortest} chars, Azure wants {low}"
        assert longest <= high, f"names.{key}: as long as {longest} chars, Azure allows {high}"
        if alnum:
            literals = "".join(re.findall(r"([^$]+)|\$\{\w+\}", template))
            assert re.fullmatch(r"[a-z0-9]*", literals), f"names.{key}: only lower-case letters and digits"
        decorators = _bicep(module_path).decorators(param)
        assert (decorators.get("minLength"), decorators.get("maxLength")) == (str(low), str(high)), (
            f"{module_path} {param}: @minLength/@maxLength must be Azure's {low}/{high}"
        )
        assert main.module_params(module_path).get(param) == f"names.{key}", f"{module_path} {param}"


def test_every_main_parameter_is_in_the_readme_table() -> None:
    readme = (INFRA / "README.md").read_text("utf-8")
    table = readme[readme.index("## Parameters") :]
    for name in _main().params():
        assert f"`{name}`" in table, f"infra/README.md's parameter table misses {name}"


FAKE_AZ = """#!/bin/sh
# A stand-in for the Azure CLI: just the calls the hook makes, answered from files in its folder.
here=$(dirname "$0")
case "$*" in
  "account show --query tenantId -o tsv") echo "$AZURE_TENANT_ID" ;;
  *"--query id -o tsv") echo "99999999-0000-0000-0000-000000000001" ;;
  *"appRoles[].[value,id]"*) cat "$here/roles.tsv" ;;
  "rest --method get"*) printf '' ;;
  "rest --method post"*) echo "$*" >> "$here/posts.log"; echo '{}' ;;
  *) echo "fake az: unexpected: $*" >&2; exit 2 ;;
esac
"""


def _run_hook_with_fake_az(
    tmp_path: Path, roles: dict[str, str], wanted: list[str]
) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "az"
    fake.write_text(FAKE_AZ, "utf-8")
    fake.chmod(0o755)
    (tmp_path / "roles.tsv").write_text("".join(f"{name}\t{role}\n" for name, role in roles.items()), "utf-8")
    environment = {
        "PATH": f"{tmp_path}:{os.environ.get('PATH', '')}",
        "AZURE_TENANT_ID": "77777777-0000-0000-0000-000000000000",
        "WAVEGUARD_IDENTITY_PRINCIPAL_ID": "11111111-2222-3333-4444-555555555555",
        "WAVEGUARD_GRAPH_PERMISSIONS": " ".join(wanted),
    }
    return _run_posix_hook(environment)


def test_posix_hook_grants_each_missing_permission_once_with_the_tenants_role_id(tmp_path: Path) -> None:
    ids = {e["permission"]: e["appRoleId"] for e in _graph_list()}
    wanted = ["User.Read.All", "Group.Create"]
    run = _run_hook_with_fake_az(tmp_path, ids, wanted)
    assert run.returncode == 0, run.stderr
    posts = (tmp_path / "posts.log").read_text("utf-8").splitlines()
    assert len(posts) == 2
    for name in wanted:
        assert sum(ids[name] in post for post in posts) == 1, name


def test_posix_hook_grants_nothing_when_a_recorded_role_id_is_not_graphs(tmp_path: Path) -> None:
    # GIVEN the tenant's Graph says Group.Create has another id than the file records
    ids = {e["permission"]: e["appRoleId"] for e in _graph_list()}
    run = _run_hook_with_fake_az(
        tmp_path,
        {**ids, "Group.Create": "00000000-0000-0000-0000-00000000dead"},
        ["User.Read.All", "Group.Create"],
    )
    # THEN the hook stops before any grant and says which entry to fix
    assert run.returncode == 1
    assert "Group.Create" in run.stderr
    assert "fix the file" in run.stderr
    assert not (tmp_path / "posts.log").exists()

"""Azure's own Python worker library indexes the app as the mini-host and the docs describe it.

`azure-functions-runtime` (dev only: Azure provides the worker) indexes `function_app.py` through
the calls the worker makes when the host starts it (`tests/function_index.py`); the mini-host indexes
it as `make run` does. Each runs in a process of its own (`get_functions()` works once per app).
Both read the same decorators, so the comparison catches the two interpreting them differently
(route, methods, auth level, %setting% references, binding properties the mini-host would ignore);
a declaration changed in the code (both views follow it) is caught by the docs: the HTTP
endpoint table of docs/azure.md and the queue table and timer list of docs/architecture.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.function_index import LOCAL_SETTINGS, SCRIPT_FILE, app_environment

ROOT = Path(__file__).resolve().parents[2]
Index = dict[str, Any]

_SETTING = re.compile(r"%([^%]+)%")
# The properties of each trigger the mini-host reads (local/minihost/loader.py); the rest of a raw
# binding is type, direction and name. Any other property would reach Azure's host and be ignored locally.
_READ_BY_MINIHOST = {
    "httpTrigger": {"route", "methods", "authLevel"},
    "queueTrigger": {"queueName", "connection"},
    "timerTrigger": {"schedule", "runOnStartup"},
}
_HTTP_RETURN = {"type": "http", "direction": "OUT", "name": "$return"}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Index]:
    """(runtime, minihost): each indexed in a subprocess, both at once."""
    out = tmp_path_factory.mktemp("index")
    env = app_environment(os.environ, ROOT)
    running = {
        way: subprocess.Popen(
            [sys.executable, "-m", "tests.function_index", way, str(out / f"{way}.json")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for way in ("runtime", "minihost")
    }
    found: dict[str, Index] = {}
    for way, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"indexing with {way} failed:\n{stdout}\n{stderr}"
        found[way] = json.loads((out / f"{way}.json").read_text("utf-8"))
    return found["runtime"], found["minihost"]


def _by_name(index: Index) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in index["functions"]}


def _app_settings() -> dict[str, str]:
    values: dict[str, str] = json.loads((ROOT / LOCAL_SETTINGS).read_text("utf-8"))["Values"]
    return values


def _resolve(value: Any, settings: Mapping[str, str]) -> Any:
    # The host expands %SETTING% in binding properties; the worker sends them unexpanded.
    return _SETTING.sub(lambda m: settings[m.group(1)], value) if isinstance(value, str) else value


def _trigger(function: Mapping[str, Any]) -> dict[str, Any]:
    triggers = [b for b in function["raw_bindings"] if str(b["type"]).endswith("Trigger")]
    assert len(triggers) == 1, f"{function['name']}: {len(triggers)} trigger bindings"
    trigger: dict[str, Any] = triggers[0]
    return trigger


def _as_minihost_reads(trigger: Mapping[str, Any], settings: Mapping[str, str]) -> dict[str, Any]:
    """A raw trigger binding as the mini-host's view spells it (see tests/function_index.py)."""
    kind = trigger["type"]
    read = {key: _resolve(trigger.get(key), settings) for key in sorted(_READ_BY_MINIHOST.get(kind, ()))}
    if kind == "httpTrigger":
        methods = read["methods"]
        read["methods"] = sorted(str(m).upper() for m in methods) if methods else None
        read["authLevel"] = str(read["authLevel"]).lower()
    return {"type": kind, **read}


def test_the_runtime_indexes_every_function_as_the_worker_would_report_it(
    indexes: tuple[Index, Index],
) -> None:
    # GIVEN the app indexed by azure_functions_runtime
    runtime, _ = indexes
    # THEN the host is told to use the worker's metadata, and each function is a worker-indexed
    # entry point of function_app.py, with no function-level retry policy (host.json's queue
    # retries are the only ones, and the mini-host implements just those)
    assert runtime["use_default_metadata_indexing"] is False
    assert runtime["functions"], "the runtime indexed no function"
    for function in runtime["functions"]:
        name = function["name"]
        assert function["entry_point"] == name
        assert function["script_file"] == SCRIPT_FILE
        assert function["directory"] == str(ROOT)
        assert function["language"] == "python"
        assert function["properties"] == {"worker_indexed": "True"}, name
        assert function["retry_options"] is None, f"{name} declares a retry policy"
        assert function["output_parameters"] == [], f"{name} has an output binding parameter"


def test_the_runtime_and_the_minihost_index_the_same_functions(indexes: tuple[Index, Index]) -> None:
    runtime, minihost = indexes
    names = [f["name"] for f in runtime["functions"]]
    assert len(names) == len(set(names)), "a function name is used twice"
    assert sorted(names) == sorted(_by_name(minihost))
    assert minihost["disabled"] == [], "local.settings.json or host.json disables a function locally"


def test_every_binding_the_runtime_sends_to_the_host_is_what_the_minihost_runs(
    indexes: tuple[Index, Index],
) -> None:
    runtime, minihost = indexes
    settings = _app_settings()
    local = _by_name(minihost)
    problems: list[str] = []
    for function in runtime["functions"]:
        name, seen = function["name"], local[function["name"]]
        trigger = _trigger(function)
        kind = trigger["type"]
        expected_bindings = [
            {"type": kind, "direction": "IN", "name": seen["trigger_parameter"]},
            *([_HTTP_RETURN] if kind == "httpTrigger" else []),
        ]
        # type, direction and name of every binding, in the raw JSON and in the BindingInfo map
        raw = [{k: b[k] for k in ("type", "direction", "name")} for b in function["raw_bindings"]]
        if sorted(raw, key=str) != sorted(expected_bindings, key=str):
            problems.append(f"{name}: bindings {raw}, the mini-host runs {expected_bindings}")
        infos = {n: (b["type"], b["direction"].upper()) for n, b in function["bindings"].items()}
        if infos != {b["name"]: (b["type"], b["direction"]) for b in function["raw_bindings"]}:
            problems.append(f"{name}: BindingInfo {infos} disagrees with the raw bindings")
        # every property of the trigger: route, methods, auth level / queue, connection / schedule
        extra = set(trigger) - {"type", "direction", "name"} - _READ_BY_MINIHOST.get(kind, set())
        if extra:
            problems.append(f"{name}: {sorted(extra)} reach Azure's host; the mini-host ignores them")
        if kind == "httpTrigger" and not trigger.get("route"):
            problems.append(f"{name}: no explicit route")
        if (sent := _as_minihost_reads(trigger, settings)) != seen["trigger"]:
            problems.append(f"{name}: the runtime sends {sent}, the mini-host runs {seen['trigger']}")
        # how each is called: async or not, the context parameter, the return value
        if function["is_async"] != seen["is_async"]:
            problems.append(f"{name}: is_async {function['is_async']} vs {seen['is_async']}")
        if function["requires_context"] != (seen["context_parameter"] is not None):
            problems.append(f"{name}: requires_context {function['requires_context']}")
        if function["input_parameters"] != [seen["trigger_parameter"]]:
            problems.append(f"{name}: input parameters {function['input_parameters']}")
        if function["has_return"] != (kind == "httpTrigger"):
            problems.append(f"{name}: has_return {function['has_return']}")
    assert problems == [], "\n".join(problems)


# ---- the docs ---------------------------------------------------------------------------------------


def _section(path: str, heading: str) -> str:
    text = (ROOT / path).read_text("utf-8")
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    end = re.search(rf"\n#{{1,{len(level)}}} ", text[start + len(heading) + 2 :])
    return text[start : start + len(heading) + 2 + end.start()] if end else text[start:]


def _table_rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return [row for row in cells[2:] if row]  # after the header and its |---| line


def _documented_endpoints() -> set[tuple[str, str, str]]:
    """(method, path, auth level) from the endpoint table of docs/azure.md."""
    endpoints: set[tuple[str, str, str]] = set()
    for endpoint, _caller, authentication in _table_rows(
        _section("docs/azure.md", "## HTTP endpoints and function keys")
    ):
        anonymous = re.search(r"^anonymous\b|\(anonymous at the Functions level", authentication)
        method = ""
        for given, path in re.findall(r"`(?:([A-Z]+) )?(/[^`\s]+)`", endpoint):
            method = given or method
            endpoints.add((method, path, "anonymous" if anonymous else "function"))
    return endpoints


def _documented_queues() -> dict[str, str | None]:
    """queue -> its consumer function (None: no consumer), from docs/architecture.md's Queues table."""
    queues: dict[str, str | None] = {}
    for row in _table_rows(_section("docs/architecture.md", "### Queues")):
        queue, consumer = re.fullmatch(r"`([a-z0-9-]+)`", row[0]), re.match(r"`(\w+)` \(", row[2])
        assert queue is not None, f"docs/architecture.md, Queues: cannot read queue cell {row[0]!r}"
        queues[queue.group(1)] = consumer.group(1) if consumer else None
    return queues


def _documented_timers() -> dict[str, str]:
    """timer function -> what docs/architecture.md says in brackets after its name."""
    section = _section("docs/architecture.md", "### Queues")
    return {
        name: " ".join(said.split()) for name, said in re.findall(r"`(\w+_timer)`\s+\(([^)]*)\)", section)
    }


def test_the_http_endpoints_are_those_docs_azure_md_lists(indexes: tuple[Index, Index]) -> None:
    runtime, minihost = indexes
    prefix = f"/{minihost['route_prefix']}" if minihost["route_prefix"] else ""
    indexed = set()
    for function in runtime["functions"]:
        trigger = _trigger(function)
        if trigger["type"] == "httpTrigger":
            for method in trigger.get("methods") or ["*"]:  # none listed: every method
                indexed.add((method.upper(), f"{prefix}/{trigger['route']}", trigger["authLevel"].lower()))
    assert indexed == _documented_endpoints(), (
        "docs/azure.md, 'HTTP endpoints and function keys': (method, path, auth level) "
        f"only in the app: {sorted(indexed - _documented_endpoints())}; "
        f"only in the doc: {sorted(_documented_endpoints() - indexed)}"
    )


def test_the_queue_triggers_are_those_docs_architecture_md_lists(indexes: tuple[Index, Index]) -> None:
    runtime, _ = indexes
    queues = _documented_queues()
    listening = {
        f["name"]: _trigger(f)["queueName"]
        for f in runtime["functions"]
        if _trigger(f)["type"] == "queueTrigger"
    }
    consumers = {consumer: queue for queue, consumer in queues.items() if consumer}
    poison = {name: queue for name, queue in listening.items() if queue.endswith("-poison")}
    # each documented consumer listens on its queue, and nothing else listens on a work queue
    assert {n: q for n, q in listening.items() if n not in poison} == consumers
    # every queue has a trigger on its poison twin, and there is no other poison trigger
    assert sorted(poison.values()) == sorted(f"{queue}-poison" for queue in queues)


def test_the_timers_are_those_docs_architecture_md_lists(indexes: tuple[Index, Index]) -> None:
    runtime, minihost = indexes
    documented = _documented_timers()
    local = _by_name(minihost)
    timers = {f["name"]: _trigger(f) for f in runtime["functions"] if _trigger(f)["type"] == "timerTrigger"}
    assert sorted(timers) == sorted(documented)
    for name, said in documented.items():
        setting = re.search(r"`(WAVEGUARD_\w+_SCHEDULE)`", said)
        assert setting is not None, f"docs/architecture.md names no schedule setting for {name}: {said!r}"
        assert timers[name]["schedule"] == f"%{setting.group(1)}%", name
        assert timers[name]["runOnStartup"] == ("at start" in said), f"{name}: runOnStartup vs {said!r}"
        # a schedule the doc spells out (e.g. "`0 */15 * * * *` ... locally") is the local one
        for spelled in re.findall(r"`((?:\S+ ){5}\S+)`", said):
            assert local[name]["trigger"]["schedule"] == spelled, name


def test_every_function_is_documented(indexes: tuple[Index, Index]) -> None:
    runtime, minihost = indexes
    prefix = f"/{minihost['route_prefix']}/" if minihost["route_prefix"] else "/"
    routes = {path.removeprefix(prefix) for _method, path, _auth in _documented_endpoints()}
    queues = _documented_queues()
    watched = {*queues, *(f"{q}-poison" for q in queues)}
    undocumented = [
        f["name"]
        for f in runtime["functions"]
        if not (
            _trigger(f).get("route") in routes
            or _trigger(f).get("queueName") in watched
            or f["name"] in _documented_timers()
        )
    ]
    assert undocumented == []

"""Index the app one way, in a process of its own, and write what was indexed as JSON.

    python -m tests.function_index runtime  OUT.json   # Azure's Python worker library
    python -m tests.function_index minihost OUT.json   # the local mini-host

Run from the repository root (the app directory). Each way imports ``function_app`` and calls
``app.get_functions()``, which works once per app object: hence one process per way, never the
test process. ``tests/unit/test_runtime_index.py`` compares the two files.

``runtime`` drives ``azure_functions_runtime`` (PyPI ``azure-functions-runtime``: the library
Azure's Python 3.13+ worker loads for a v2 app) through the two calls Azure's proxy worker makes
when the host starts it: ``worker_init_request`` (which indexes the app: ``loader.index_function_app``
imports the script file and calls ``get_functions()``; ``Registry.add_indexed_function`` validates
each function's parameters against its bindings; ``loader.process_indexed_function`` builds each
``RpcFunctionMetadata``), then ``functions_metadata_request`` (the metadata the host receives).
The proxy worker passes the generated gRPC message classes in as ``protos``; they are not on PyPI,
so ``_Protos`` stands in for them: plain records of the fields the library sets, with the enum
values of the Functions worker protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT_FILE = "function_app.py"
APP_REF = "function_app:app"
LOCAL_SETTINGS = Path("local") / "local.settings.json"

# FunctionRpc.proto: BindingInfo.Direction and BindingInfo.DataType.
DIRECTIONS = {0: "in", 1: "out", 2: "inout"}
DATA_TYPES = {0: "undefined", 1: "string", 2: "binary", 3: "stream"}


class _Message:
    """A protobuf message as the library uses one: built from keyword fields, read as attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _StatusResult(_Message):
    Failure = 0
    Success = 1
    Cancelled = 2


class _BindingInfo(_Message):
    out = 1
    inout = 2
    undefined = 0


setattr(_BindingInfo, "in", 0)  # "in" is a keyword: it cannot be a class-body name


class _Protos:
    """The message classes the library builds while it indexes and answers the metadata request."""

    StatusResult = _StatusResult
    BindingInfo = _BindingInfo
    RpcException = _Message
    WorkerMetadata = _Message
    WorkerInitResponse = _Message
    RpcFunctionMetadata = _Message
    RpcRetryOptions = _Message
    FunctionMetadataResponse = _Message


@dataclass
class _WorkerInitRequest:
    function_app_directory: str
    capabilities: dict[str, str] = field(default_factory=dict)


@dataclass
class _StreamingMessage:
    worker_init_request: _WorkerInitRequest | None = None


@dataclass
class _WorkerRequest:
    """Shaped like the proxy worker's ``WorkerRequest`` (name, the host's message, properties)."""

    name: str
    request: _StreamingMessage
    properties: dict[str, Any] = field(default_factory=dict)


def _failure(result: Any) -> str | None:
    if result.status == _StatusResult.Success:
        return None
    exception = getattr(result, "exception", None)
    return str(getattr(exception, "message", "unknown failure"))


async def _runtime_index(app_dir: Path) -> dict[str, Any]:
    import azure_functions_runtime as runtime
    from azure_functions_runtime import handle_event

    init = _WorkerRequest(
        "WorkerInitRequest",
        _StreamingMessage(_WorkerInitRequest(str(app_dir))),
        {"protos": _Protos, "host": "127.0.0.1"},
    )
    runtime.start_threadpool_executor()
    try:
        init_response = await runtime.worker_init_request(init)
        problem = _failure(init_response.result)
        if problem is not None:
            raise SystemExit(f"worker_init_request failed: {problem}")
        metadata = await runtime.functions_metadata_request(
            _WorkerRequest("WorkerMetadataRequest", _StreamingMessage())
        )
    finally:
        runtime.stop_threadpool_executor()
    problem = _failure(metadata.result)
    if problem is not None:
        raise SystemExit(f"functions_metadata_request failed: {problem}")
    registry = handle_event._functions
    functions = []
    for meta in metadata.function_metadata_results:
        info = registry.get_function(meta.function_id)
        assert info is not None, f"{meta.name} is not in the runtime's registry"
        functions.append(
            {
                "name": meta.name,
                "entry_point": meta.entry_point,
                "script_file": meta.script_file,
                "directory": meta.directory,
                "language": meta.language,
                "properties": dict(meta.properties),
                "retry_options": None if meta.retry_options is None else vars(meta.retry_options),
                "bindings": {
                    name: {
                        "type": info_.type,
                        "direction": DIRECTIONS[info_.direction],
                        "data_type": DATA_TYPES[info_.data_type or 0],
                    }
                    for name, info_ in meta.bindings.items()
                },
                "raw_bindings": [json.loads(raw) for raw in meta.raw_bindings],
                "is_async": info.is_async,
                "requires_context": info.requires_context,
                "has_return": info.has_return,
                "input_parameters": sorted(info.input_types),
                "output_parameters": sorted(info.output_types),
            }
        )
    return {
        "use_default_metadata_indexing": metadata.use_default_metadata_indexing,
        "functions": functions,
    }


def _minihost_index(app_dir: Path) -> dict[str, Any]:
    from local.minihost import create_host
    from local.minihost.loader import HttpTrigger, QueueTrigger

    host = create_host(APP_REF, app_dir=app_dir, settings_file=app_dir / LOCAL_SETTINGS, http_port=0)
    try:
        functions = []
        for spec in host.functions:
            trigger = spec.trigger
            described: dict[str, Any]
            if isinstance(trigger, HttpTrigger):
                described = {
                    "type": "httpTrigger",
                    "route": trigger.route.template,
                    "methods": sorted(trigger.methods) if trigger.methods is not None else None,
                    "authLevel": trigger.auth_level,
                }
            elif isinstance(trigger, QueueTrigger):
                described = {
                    "type": "queueTrigger",
                    "queueName": trigger.queue_name,
                    "connection": trigger.connection,
                }
            else:
                described = {
                    "type": "timerTrigger",
                    "schedule": trigger.schedule.expression,
                    "runOnStartup": trigger.run_on_startup,
                }
            functions.append(
                {
                    "name": spec.name,
                    "trigger": described,
                    "trigger_parameter": spec.trigger_parameter,
                    "context_parameter": spec.context_parameter,
                    "is_async": spec.is_async,
                    "directory": spec.directory,
                }
            )
        return {"route_prefix": host.settings.route_prefix, "disabled": host.disabled, "functions": functions}
    finally:
        host.stop()


def index(way: str, app_dir: Path) -> dict[str, Any]:
    """What `way` ("runtime" or "minihost") indexes in `app_dir`; run it in a fresh process."""
    if way == "runtime":
        # Like the worker on Azure: the app directory is the working directory and on sys.path.
        os.chdir(app_dir)
        if str(app_dir) not in sys.path:
            sys.path.insert(0, str(app_dir))
        return asyncio.run(_runtime_index(app_dir))
    if way == "minihost":
        return _minihost_index(app_dir)
    raise SystemExit(f"unknown way {way!r}: expected 'runtime' or 'minihost'")


def app_environment(base: Mapping[str, str], app_dir: Path) -> dict[str, str]:
    """`base` without function or app settings, plus local.settings.json's Values (the app settings
    of `make run`, and of Azure as far as indexing goes) and no warm-up thread or telemetry export."""
    values: dict[str, str] = json.loads((app_dir / LOCAL_SETTINGS).read_text("utf-8"))["Values"]
    prefixes = ("WAVEGUARD_", "AzureWebJobs", "PYTHON_", "APPLICATIONINSIGHTS_", "OTEL_", "FUNCTIONS_")
    env = {k: v for k, v in base.items() if k not in values and not k.startswith(prefixes)}
    return {**env, **values, "WAVEGUARD_WARM_START": "false", "WAVEGUARD_TELEMETRY": "off"}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    way, out = argv
    described = index(way, Path.cwd().resolve())
    Path(out).write_text(json.dumps(described, indent=2, sort_keys=True), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

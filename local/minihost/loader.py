"""Import the app ("module:attribute"), call `get_functions()` once, turn each function into a FunctionSpec.

Bindings are read from `Function.get_raw_bindings()`: the JSON the Python worker sends to the real host
when it indexes a v2 app, so the mini-host sees exactly what Azure sees.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions import _abc as azf_abc

from local.minihost import ncrontab
from local.minihost.errors import AppLoadError, BindingError, MiniHostError
from local.minihost.routes import RouteTemplate, compile_route

DEFAULT_CONNECTION = "AzureWebJobsStorage"
CONTEXT_PARAMETER = "context"  # the Python worker passes func.Context to a parameter with this name
_APP_SETTING = re.compile(r"%([^%]+)%")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_AUTH_LEVELS = {"anonymous", "function", "admin"}
_SUPPORTED = "httpTrigger, queueTrigger, timerTrigger and the http output ($return)"


@dataclass(frozen=True)
class HttpTrigger:
    route: RouteTemplate
    methods: frozenset[str] | None  # None: every method, as when the decorator lists none
    auth_level: str  # "anonymous" | "function" | "admin"


@dataclass(frozen=True)
class QueueTrigger:
    queue_name: str
    connection: str  # the setting name, e.g. "AzureWebJobsStorage"
    connection_string: str


@dataclass(frozen=True)
class TimerTrigger:
    schedule: ncrontab.Schedule
    run_on_startup: bool


Trigger = HttpTrigger | QueueTrigger | TimerTrigger


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the app, typed and validated, ready to be driven by a trigger adapter."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    trigger_parameter: str
    context_parameter: str | None
    trigger: Trigger
    directory: str


@dataclass
class LoadedApp:
    """The imported app module and its functions; `unload` puts sys.modules and sys.path back."""

    module_name: str
    functions: list[FunctionSpec]
    _previous_module: ModuleType | None = None
    _added_path: str | None = None
    _unloaded: bool = field(default=False, repr=False)

    def unload(self) -> None:
        if self._unloaded:
            return
        self._unloaded = True
        sys.modules.pop(self.module_name, None)
        if self._previous_module is not None:
            sys.modules[self.module_name] = self._previous_module
        if self._added_path is not None and self._added_path in sys.path:
            sys.path.remove(self._added_path)


def load_app(app_ref: str, app_dir: Path, *, environ: Mapping[str, str]) -> LoadedApp:
    """Import `app_ref` from `app_dir` and read its functions.

    Raises:
        AppLoadError: the module or attribute cannot be imported or is not a FunctionApp.
        BindingError: a function uses a trigger or binding the mini-host cannot run.
    """
    module_name, attribute = _split_ref(app_ref)
    loaded = LoadedApp(module_name, [])
    module = _import_fresh(module_name, app_dir, loaded)
    try:
        app = _app_attribute(module, module_name, attribute)
        loaded.functions = read_functions(app, app_ref=app_ref, directory=str(app_dir), environ=environ)
    except MiniHostError:
        loaded.unload()
        raise
    return loaded


def read_functions(
    app: Any, *, app_ref: str, directory: str, environ: Mapping[str, str]
) -> list[FunctionSpec]:
    """Call `app.get_functions()` (once: a second call raises) and validate every function.

    Raises:
        AppLoadError: get_functions() failed (duplicate names, or it was already called).
        BindingError: a function uses a trigger or binding the mini-host cannot run.
    """
    try:
        functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(
            f"{app_ref}.get_functions() failed: {exc} (it can be called only once per FunctionApp)"
        ) from exc
    return [_spec(f, directory, environ) for f in functions]


def _split_ref(app_ref: str) -> tuple[str, str]:
    module_name, _, attribute = app_ref.partition(":")
    attribute = attribute or "app"
    valid = all(part.isidentifier() for part in module_name.split(".")) and attribute.isidentifier()
    if not valid:
        raise AppLoadError(f"app reference {app_ref!r}: expected 'module:attribute', e.g. 'function_app:app'")
    return module_name, attribute


def _import_fresh(module_name: str, app_dir: Path, loaded: LoadedApp) -> ModuleType:
    # A fresh import per host: get_functions() may be called once per app object, and tests start many hosts.
    if (
        not (app_dir / f"{module_name.replace('.', '/')}.py").exists()
        and not (app_dir / module_name).is_dir()
    ):
        raise AppLoadError(f"cannot import {module_name!r}: no {module_name}.py in app directory {app_dir}")
    directory = str(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
        loaded._added_path = directory
    loaded._previous_module = sys.modules.pop(module_name, None)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        loaded.unload()
        raise AppLoadError(
            f"importing {module_name!r} from {app_dir} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _app_attribute(module: ModuleType, module_name: str, attribute: str) -> Any:
    if not hasattr(module, attribute):
        apps = [name for name, value in vars(module).items() if isinstance(value, func.FunctionApp)]
        raise AppLoadError(
            f"module {module_name!r} has no attribute {attribute!r}; "
            f"FunctionApp objects found: {apps or 'none'}"
        )
    app = getattr(module, attribute)
    if not callable(getattr(app, "get_functions", None)):
        raise AppLoadError(
            f"{module_name}:{attribute} is a {type(app).__name__}; expected an azure.functions.FunctionApp"
        )
    return app


def _spec(function: func.Function, directory: str, environ: Mapping[str, str]) -> FunctionSpec:
    name = str(function.get_function_name())
    bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
    trigger_bindings = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(trigger_bindings) != 1:
        raise BindingError(
            f"function {name!r}: expected exactly one trigger binding, found {len(trigger_bindings)}"
        )
    trigger_binding = trigger_bindings[0]
    for binding in bindings:
        if binding is not trigger_binding and not _is_http_return(binding):
            raise BindingError(
                f"function {name!r}: binding {binding.get('name')!r} of type {binding.get('type')!r} "
                f"(direction {binding.get('direction')}) is not supported; "
                f"the mini-host supports {_SUPPORTED}"
            )
    user_function = function.get_user_function()
    try:
        trigger = _trigger(name, trigger_binding, environ)
    except BindingError as exc:
        raise BindingError(f"function {name!r}: {exc}") from exc
    parameter = str(trigger_binding["name"])
    context = _check_parameters(name, user_function, parameter, trigger)
    return FunctionSpec(
        name=name,
        func=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        trigger_parameter=parameter,
        context_parameter=context,
        trigger=trigger,
        directory=directory,
    )


def _is_http_return(binding: Mapping[str, Any]) -> bool:
    return binding.get("type") == "http" and binding.get("name") == "$return"


def _trigger(name: str, binding: Mapping[str, Any], environ: Mapping[str, str]) -> Trigger:
    kind = binding.get("type")
    if kind == "httpTrigger":
        return _http_trigger(name, binding)
    if kind == "queueTrigger":
        return _queue_trigger(binding, environ)
    if kind == "timerTrigger":
        schedule = _resolve_settings(str(binding.get("schedule", "")), "schedule", environ)
        return TimerTrigger(ncrontab.parse(schedule), bool(binding.get("runOnStartup", False)))
    raise BindingError(
        f"trigger {binding.get('name')!r} of type {kind!r} is not supported; expected {_SUPPORTED}"
    )


def _http_trigger(name: str, binding: Mapping[str, Any]) -> HttpTrigger:
    route = binding.get("route") or name
    auth_level = str(binding.get("authLevel") or "function").lower()
    if auth_level not in _AUTH_LEVELS:
        raise BindingError(f"authLevel {binding.get('authLevel')!r}: expected one of {sorted(_AUTH_LEVELS)}")
    methods = binding.get("methods")
    allowed = frozenset(str(m).upper() for m in methods) if methods else None
    return HttpTrigger(compile_route(str(route)), allowed, auth_level)


def _queue_trigger(binding: Mapping[str, Any], environ: Mapping[str, str]) -> QueueTrigger:
    queue_name = _resolve_settings(str(binding.get("queueName", "")), "queueName", environ)
    if not _QUEUE_NAME.match(queue_name):
        raise BindingError(
            f"queueName {queue_name!r}: expected 3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    connection = str(binding.get("connection") or DEFAULT_CONNECTION)
    # Like the Functions host: the setting itself, else the same name prefixed with "AzureWebJobs".
    value = environ.get(connection) or environ.get(f"AzureWebJobs{connection}")
    if not value:
        raise BindingError(
            f"queue trigger connection {connection!r} is not set: expected an environment variable "
            f"(or a Values entry in local.settings.json) named {connection!r} "
            "holding a storage connection string"
        )
    return QueueTrigger(queue_name, connection, value)


def _resolve_settings(text: str, field_name: str, environ: Mapping[str, str]) -> str:
    """Expand %SETTING% references as the Functions host does in binding properties."""

    def lookup(match: re.Match[str]) -> str:
        setting = match.group(1)
        if setting not in environ:
            raise BindingError(f"{field_name} {text!r} refers to app setting {setting!r}, which is not set")
        return environ[setting]

    return _APP_SETTING.sub(lookup, text)


def _check_parameters(
    name: str, user_function: Callable[..., Any], parameter: str, trigger: Trigger
) -> str | None:
    signature = inspect.signature(user_function)
    if parameter not in signature.parameters:
        raise BindingError(
            f"function {name!r}: the trigger binds parameter {parameter!r} but the function declares "
            f"{list(signature.parameters)}"
        )
    unbound = [
        p.name
        for p in signature.parameters.values()
        if p.name not in {parameter, CONTEXT_PARAMETER} and p.default is inspect.Parameter.empty
    ]
    if unbound:
        raise BindingError(
            f"function {name!r}: parameters {unbound} are not bound by any binding; "
            f"bound: [{parameter!r}, {CONTEXT_PARAMETER!r}]"
        )
    _check_annotation(name, user_function, parameter, trigger)
    return CONTEXT_PARAMETER if CONTEXT_PARAMETER in signature.parameters else None


def _check_annotation(name: str, user_function: Callable[..., Any], parameter: str, trigger: Trigger) -> None:
    try:
        annotation = inspect.get_annotations(user_function, eval_str=True).get(parameter)
    except Exception:
        return  # unresolvable forward references: the Python worker would not check them either
    expected: tuple[type, str] = {
        HttpTrigger: (azf_abc.HttpRequest, "azure.functions.HttpRequest"),
        QueueTrigger: (azf_abc.QueueMessage, "azure.functions.QueueMessage"),
        TimerTrigger: (azf_abc.TimerRequest, "azure.functions.TimerRequest"),
    }[type(trigger)]
    if isinstance(annotation, type) and not issubclass(annotation, expected[0]):
        raise BindingError(
            f"function {name!r}: parameter {parameter!r} is annotated {annotation.__name__}; "
            f"the trigger passes {expected[1]}"
        )

"""The composition root registers exactly the functions we expect, each with the right trigger."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.names import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]

# name -> the trigger binding every deployment must have. Extend this table with each new function.
EXPECTED: dict[str, dict[str, Any]] = {
    "health": {"type": "httpTrigger", "route": "health", "methods": ["GET"], "authLevel": "anonymous"},
    "health_details": {
        "type": "httpTrigger",
        "route": "health/details",
        "methods": ["GET"],
        "authLevel": "function",
    },
    "report": {"type": "httpTrigger", "route": "report", "methods": ["GET"], "authLevel": "function"},
    "hr_worker": {"type": "queueTrigger", "queueName": "hr-events", "connection": "AzureWebJobsStorage"},
    "hr_events": {"type": "httpTrigger", "route": "hr/events", "methods": ["POST"], "authLevel": "anonymous"},
    "wave_worker": {"type": "queueTrigger", "queueName": "wave-work", "connection": "AzureWebJobsStorage"},
    "group_worker": {
        "type": "queueTrigger",
        "queueName": "group-changes",
        "connection": "AzureWebJobsStorage",
    },
    "alert_router": {
        "type": "queueTrigger",
        "queueName": "alerts",
        "connection": "AzureWebJobsStorage",
    },
    "hr_bamboohr": {
        "type": "httpTrigger",
        "route": "hr/bamboohr",
        "methods": ["POST"],
        "authLevel": "anonymous",
    },
    "helpdesk_tickets": {
        "type": "httpTrigger",
        "route": "helpdesk/tickets",
        "methods": ["POST"],
        "authLevel": "anonymous",
    },
    "helpdesk_jira": {
        "type": "httpTrigger",
        "route": "helpdesk/jira",
        "methods": ["POST"],
        "authLevel": "anonymous",
    },
    "graph_notifications": {
        "type": "httpTrigger",
        "route": "graph/notifications",
        "methods": ["POST"],
        "authLevel": "function",
    },
    "azure_monitor_alerts": {
        "type": "httpTrigger",
        "route": "alerts/azure-monitor",
        "methods": ["POST"],
        "authLevel": "function",
    },
    "graph_lifecycle": {
        "type": "httpTrigger",
        "route": "graph/lifecycle",
        "methods": ["POST"],
        "authLevel": "function",
    },
    "risk_timer": {"type": "timerTrigger", "schedule": "%WAVEGUARD_RISK_SCHEDULE%", "runOnStartup": False},
    "wave_timer": {"type": "timerTrigger", "schedule": "%WAVEGUARD_WAVE_SCHEDULE%", "runOnStartup": False},
    "subscription_timer": {
        "type": "timerTrigger",
        "schedule": "%WAVEGUARD_SUBSCRIPTION_SCHEDULE%",
        "runOnStartup": True,
    },
    "group_resync_timer": {
        "type": "timerTrigger",
        "schedule": "%WAVEGUARD_GROUP_RESYNC_SCHEDULE%",
        "runOnStartup": False,
    },
    **{
        f"{queue.replace('-', '_')}_poison": {
            "type": "queueTrigger",
            "queueName": f"{queue}-poison",
            "connection": "AzureWebJobsStorage",
        }
        for queue in ALL_QUEUES
    },
}


def _load_functions() -> dict[str, Any]:
    # A private module object: get_functions() may be called only once per app, and other tests
    # (or the mini-host) may load the real `function_app` module in this process.
    spec = importlib.util.spec_from_file_location("function_app_wiring_check", ROOT / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f.get_function_name(): f for f in module.app.get_functions()}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return _load_functions()


def test_every_expected_function_is_registered_and_nothing_else(functions: dict[str, Any]) -> None:
    # GIVEN the app as Azure would load it / WHEN its functions are listed / THEN they are exactly these
    assert sorted(functions) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trigger_binding(functions: dict[str, Any], name: str) -> None:
    trigger = {k: _plain(v) for k, v in functions[name].get_trigger().get_dict_repr().items()}
    for key, expected in EXPECTED[name].items():
        actual = trigger.get(key)
        assert actual == expected, f"{name}: trigger {key} is {actual!r}, expected {expected!r}"


def test_queue_triggers_use_known_queues_and_the_storage_connection(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        trigger = fn.get_trigger().get_dict_repr()
        if trigger["type"] == "queueTrigger":
            known = {*ALL_QUEUES, *(f"{q}-poison" for q in ALL_QUEUES)}
            assert trigger["queueName"] in known, f"{name} listens on an unknown queue"
            assert trigger.get("connection") == "AzureWebJobsStorage", f"{name} uses another connection"


def test_http_functions_return_through_the_http_output(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        if fn.get_trigger().get_dict_repr()["type"] == "httpTrigger":
            outputs = [b.get_dict_repr() for b in fn.get_bindings() if b.get_dict_repr()["type"] == "http"]
            assert [o["name"] for o in outputs] == ["$return"], name


def test_every_app_setting_a_binding_names_is_set_locally(functions: dict[str, Any]) -> None:
    # GIVEN the %SETTING% references in every binding (the host refuses to index a function
    # whose reference does not resolve)
    referenced = {
        setting
        for fn in functions.values()
        for binding in fn.get_bindings()
        for value in binding.get_dict_repr().values()
        if isinstance(value, str)
        for setting in re.findall(r"%([^%]+)%", value)
    }
    assert "WAVEGUARD_WAVE_SCHEDULE" in referenced
    # THEN local.settings.json (make run) sets each one. (That infra/ sets them in Azure is
    # checked with every other app setting in test_infra_matches_code.py.)
    local = json.loads((ROOT / "local" / "local.settings.json").read_text("utf-8"))["Values"]
    for setting in sorted(referenced):
        assert setting in local, f"local/local.settings.json does not set {setting}"

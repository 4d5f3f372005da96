"""host.json and local.settings.json: defaults, values and clear errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.minihost.errors import ConfigError
from local.minihost.settings import (
    HostSettings,
    QueueSettings,
    format_timespan,
    load_host_settings,
    load_local_settings,
    parse_host_settings,
    parse_timespan,
)

REPO = Path(__file__).resolve().parents[3]


def test_an_empty_host_json_gets_the_functions_host_defaults() -> None:
    settings = parse_host_settings({"version": "2.0"})
    assert settings == HostSettings(QueueSettings(16, 8, 5, 0.0, 60.0, "base64"), "api")


def test_queue_and_http_settings_are_read() -> None:
    # GIVEN a host.json with every queue setting
    doc = {
        "version": "2.0",
        "extensions": {
            "queues": {
                "batchSize": 4,
                "newBatchThreshold": 1,
                "maxDequeueCount": 3,
                "visibilityTimeout": "00:00:30",
                "maxPollingInterval": "00:00:02.5",
                "messageEncoding": "None",
            },
            "http": {"routePrefix": "/v1/"},
        },
    }
    # WHEN parsing THEN each value is taken, timespans in seconds, the prefix without slashes
    assert parse_host_settings(doc) == HostSettings(QueueSettings(4, 1, 3, 30.0, 2.5, "none"), "v1")


def test_new_batch_threshold_defaults_to_half_the_batch_size() -> None:
    settings = parse_host_settings({"extensions": {"queues": {"batchSize": 10}}})
    assert settings.queues.new_batch_threshold == 5


def test_an_empty_route_prefix_serves_routes_at_the_root() -> None:
    assert parse_host_settings({"extensions": {"http": {"routePrefix": ""}}}).route_prefix == ""


def test_the_repository_host_json_is_valid() -> None:
    # GIVEN the app's own host.json WHEN loading it THEN the documented queue semantics come out
    settings = load_host_settings(REPO / "host.json")
    assert settings.queues.max_dequeue_count == 5
    assert settings.route_prefix == "api"
    assert settings.function_timeout == 300.0


def test_a_missing_host_json_means_defaults(tmp_path: Path) -> None:
    assert load_host_settings(tmp_path / "host.json") == HostSettings()


@pytest.mark.parametrize(
    ("queues", "mentions"),
    [
        ({"batchSize": 0}, "extensions.queues.batchSize: expected an integer 1-32, found 0"),
        ({"batchSize": 33}, "extensions.queues.batchSize: expected an integer 1-32, found 33"),
        ({"batchSize": "16"}, "extensions.queues.batchSize: expected an integer 1-32, found '16'"),
        ({"maxDequeueCount": 0}, "extensions.queues.maxDequeueCount: expected an integer 1-10000"),
        ({"newBatchThreshold": -1}, "extensions.queues.newBatchThreshold"),
        ({"visibilityTimeout": "30s"}, "extensions.queues.visibilityTimeout: expected a TimeSpan string"),
        ({"visibilityTimeout": 30}, "extensions.queues.visibilityTimeout: expected a TimeSpan string"),
        ({"visibilityTimeout": "8.00:00:00"}, "extensions.queues.visibilityTimeout: at most 7 days"),
        ({"maxPollingInterval": "00:61:00"}, "extensions.queues.maxPollingInterval: '00:61:00' has"),
        ({"maxPollingInterval": "00:00:00"}, "extensions.queues.maxPollingInterval: at least"),
        ({"messageEncoding": "utf8"}, 'extensions.queues.messageEncoding: expected "base64" or "none"'),
    ],
)
def test_bad_queue_values_are_rejected_naming_the_field(queues: dict[str, object], mentions: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_host_settings({"version": "2.0", "extensions": {"queues": queues}}, source="host.json")
    assert mentions in str(raised.value)
    assert str(raised.value).startswith("host.json: ")


@pytest.mark.parametrize(
    ("doc", "mentions"),
    [
        ({"version": "1.0"}, "version: expected \"2.0\", found '1.0'"),
        ({"extensions": []}, "extensions: expected a JSON object, found list"),
        ({"extensions": {"http": {"routePrefix": 5}}}, "extensions.http.routePrefix: expected a string"),
        ([], "expected a JSON object"),
    ],
)
def test_bad_documents_are_rejected(doc: object, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions.replace("(", r"\(")):
        parse_host_settings(doc)


def test_invalid_json_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text('{\n  "version": "2.0",\n  oops\n}')
    with pytest.raises(ConfigError, match=r"host.json: not valid JSON at line 3"):
        load_host_settings(path)


@pytest.mark.parametrize(
    ("doc", "seconds"),
    [
        ({}, None),
        ({"functionTimeout": "-1"}, None),
        ({"functionTimeout": "00:05:00"}, 300.0),
        ({"functionTimeout": "00:00:00.5"}, 0.5),
        ({"functionTimeout": "1.00:00:00"}, 86400.0),
    ],
)
def test_function_timeout_is_seconds_and_absent_or_minus_one_means_no_limit(
    doc: dict[str, object], seconds: float | None
) -> None:
    assert parse_host_settings({"version": "2.0", **doc}).function_timeout == seconds


@pytest.mark.parametrize(
    ("value", "mentions"),
    [
        ("5", "functionTimeout: expected a TimeSpan string like \"00:00:30\", found '5'"),
        (300, 'functionTimeout: expected a TimeSpan string like "00:00:30", found 300'),
        (None, "functionTimeout: expected a TimeSpan string"),
        ("-2", "functionTimeout: expected a TimeSpan string"),
        ("00:00:00", "functionTimeout: expected more than 00:00:00 or \"-1\" (no limit), found '00:00:00'"),
        ("00:00:60", "functionTimeout: '00:00:60' has"),
    ],
)
def test_bad_function_timeouts_are_rejected_naming_the_field(value: object, mentions: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_host_settings({"version": "2.0", "functionTimeout": value}, source="host.json")
    assert str(raised.value).startswith(f"host.json: {mentions}")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300.0, "00:05:00"), (1.0, "00:00:01"), (0.5, "00:00:00.5000000"), (90061.0, "1.01:01:01")],
)
def test_timeouts_print_as_timespans(seconds: float, text: str) -> None:
    assert format_timespan(seconds) == text
    assert parse_timespan(text, where="x") == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:30", 30.0), ("00:01:00", 60.0), ("01:00:00", 3600.0), ("1.00:00:01", 86401.0), ("0:0:0.5", 0.5)],
)
def test_timespans_are_seconds(text: str, seconds: float) -> None:
    assert parse_timespan(text, where="x") == seconds


def test_local_settings_of_the_repository_point_at_local_services() -> None:
    # GIVEN the committed local settings WHEN loading them THEN they describe the one-machine stack
    settings = load_local_settings(REPO / "local" / "local.settings.json")
    assert settings.values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in settings.values["AzureWebJobsStorage"]
    assert settings.values["GRAPH_BASE_URL"] == "http://127.0.0.1:7072/v1.0"
    assert settings.http_port == 7071
    assert settings.function_keys == {"default": "local-dev-function-key"}


def write_settings(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("doc", "mentions"),
    [
        ({"IsEncrypted": True}, "IsEncrypted"),
        (
            {"Values": {"PORT": 5}},
            "Values: values must be strings (as in Azure app settings); not strings: ['PORT']",
        ),
        (
            {"Host": {"LocalHttpPort": "7071"}},
            "Host.LocalHttpPort: expected a port number 0-65535, found '7071'",
        ),
        ({"Host": {"LocalHttpPort": 70000}}, "Host.LocalHttpPort"),
        ({"FunctionKeys": {"default": ""}}, "FunctionKeys: names and keys must be non-empty"),
        ({"FunctionKeys": ["k"]}, "FunctionKeys: expected a JSON object"),
    ],
)
def test_bad_local_settings_are_rejected_naming_the_field(tmp_path: Path, doc: object, mentions: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_local_settings(write_settings(tmp_path, doc))
    assert mentions in str(raised.value)


def test_a_missing_settings_file_is_an_error_when_one_was_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_local_settings(tmp_path / "nope.json")


def test_host_json_functions_lists_the_only_functions_to_run() -> None:
    assert parse_host_settings({"version": "2.0"}).functions == ()
    assert parse_host_settings({"version": "2.0", "functions": ["hr_events"]}).functions == ("hr_events",)
    with pytest.raises(ConfigError, match="functions: expected a list of function names"):
        parse_host_settings({"version": "2.0", "functions": "hr_events"})
    with pytest.raises(ConfigError, match="functions"):
        parse_host_settings({"version": "2.0", "functions": [""]})

"""host.json and local.settings.json, read the way the Functions host and Core Tools read them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.minihost.errors import ConfigError

DEFAULT_HTTP_PORT = 7071
MASTER_KEY_NAME = "_master"
# .NET TimeSpan text as host.json uses it: [d.]hh:mm:ss[.fffffff]
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d{1,7})?)$")
_MAX_BATCH_SIZE = 32  # the Storage service returns at most 32 messages per receive
_MAX_VISIBILITY = 7 * 24 * 3600.0


@dataclass(frozen=True)
class QueueSettings:
    """`extensions.queues` of host.json, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostSettings:
    """What the mini-host takes from host.json.

    `function_timeout` is `functionTimeout` in seconds, None for no limit ("-1" or absent). On Azure an
    absent value means 5 minutes on the Consumption plan (at most 10) and 30 minutes on the Flex
    Consumption, Premium and Dedicated plans and Container Apps (where "-1" lifts the limit). The mini-host
    does not know the plan, so absent means no limit, as before: set `functionTimeout` to get Azure's
    behaviour; guessing a plan would cut short a local run that the real plan lets finish.
    """

    queues: QueueSettings = field(default_factory=QueueSettings)
    route_prefix: str = "api"
    function_timeout: float | None = None
    functions: tuple[str, ...] = ()  # host.json "functions": the only ones to run (empty: all)


@dataclass(frozen=True)
class LocalSettings:
    """What the mini-host takes from local.settings.json."""

    values: dict[str, str] = field(default_factory=dict)
    http_port: int | None = None
    function_keys: dict[str, str] = field(default_factory=dict)


def parse_timespan(text: object, *, where: str) -> float:
    """Seconds in a .NET TimeSpan string such as "00:00:30" or "1.00:00:00".

    Raises:
        ConfigError: `text` is not a TimeSpan string; the message names `where`.
    """
    match = _TIMESPAN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f'{where}: expected a TimeSpan string like "00:00:30", found {text!r}')
    hours, minutes = int(match["h"]), int(match["m"])
    seconds = float(match["s"])
    if hours > 23 or minutes > 59 or seconds >= 60:
        raise ConfigError(f"{where}: {text!r} has hours > 23, minutes > 59 or seconds >= 60")
    return int(match["days"] or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def load_host_settings(path: Path | None) -> HostSettings:
    """Read host.json; a missing file (or None) means every default.

    Raises:
        ConfigError: the file is not JSON or a value is invalid; the message names file and field.
    """
    if path is None or not path.exists():
        return HostSettings()
    return parse_host_settings(_read_json(path), source=str(path))


def parse_host_settings(data: object, *, source: str = "host.json") -> HostSettings:
    """Validate the parsed host.json document.

    Raises:
        ConfigError: a value is invalid; the message names the field and what was expected.
    """
    doc = _mapping(data, where=source)
    version = doc.get("version", "2.0")
    if version != "2.0":
        raise ConfigError(f'{source}: version: expected "2.0", found {version!r}')
    extensions = _mapping(doc.get("extensions", {}), where=f"{source}: extensions")
    queues = _mapping(extensions.get("queues", {}), where=f"{source}: extensions.queues")
    http = _mapping(extensions.get("http", {}), where=f"{source}: extensions.http")
    return HostSettings(
        queues=_parse_queues(queues, source),
        route_prefix=_parse_route_prefix(http, source),
        function_timeout=_parse_function_timeout(doc, source),
        functions=_parse_functions(doc, source),
    )


def _parse_functions(doc: Mapping[str, Any], source: str) -> tuple[str, ...]:
    value = doc.get("functions", [])
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ConfigError(f"{source}: functions: expected a list of function names, found {value!r}")
    return tuple(value)


def _parse_function_timeout(doc: Mapping[str, Any], source: str) -> float | None:
    value = doc.get("functionTimeout", "-1")
    if value == "-1":
        return None
    seconds = parse_timespan(value, where=f"{source}: functionTimeout")
    if seconds <= 0:
        raise ConfigError(
            f'{source}: functionTimeout: expected more than 00:00:00 or "-1" (no limit), found {value!r}'
        )
    return seconds


def format_timespan(seconds: float) -> str:
    """The TimeSpan text for `seconds` as the Functions host prints it, e.g. 300 -> "00:05:00"."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{int(hours):02d}:{int(minutes):02d}:{int(secs):02d}"
    if secs != int(secs):
        text += f"{secs - int(secs):.7f}"[1:]
    return f"{int(days)}.{text}" if days else text


def _parse_queues(queues: Mapping[str, Any], source: str) -> QueueSettings:
    where = f"{source}: extensions.queues"
    defaults = QueueSettings()
    batch_size = _int(queues, "batchSize", defaults.batch_size, 1, _MAX_BATCH_SIZE, where)
    # The Functions host's default threshold is half the batch size.
    threshold = _int(queues, "newBatchThreshold", batch_size // 2, 0, 10_000, where)
    max_dequeue = _int(queues, "maxDequeueCount", defaults.max_dequeue_count, 1, 10_000, where)
    visibility = defaults.visibility_timeout
    if "visibilityTimeout" in queues:
        visibility = parse_timespan(queues["visibilityTimeout"], where=f"{where}.visibilityTimeout")
        if visibility > _MAX_VISIBILITY:
            found = queues["visibilityTimeout"]
            raise ConfigError(f"{where}.visibilityTimeout: at most 7 days, found {found!r}")
    polling = defaults.max_polling_interval
    if "maxPollingInterval" in queues:
        polling = parse_timespan(queues["maxPollingInterval"], where=f"{where}.maxPollingInterval")
        if polling < 0.1:
            raise ConfigError(
                f"{where}.maxPollingInterval: at least 00:00:00.1, found {queues['maxPollingInterval']!r}"
            )
    encoding = queues.get("messageEncoding", defaults.message_encoding)
    if not isinstance(encoding, str) or encoding.lower() not in {"base64", "none"}:
        raise ConfigError(f'{where}.messageEncoding: expected "base64" or "none", found {encoding!r}')
    return QueueSettings(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_dequeue_count=max_dequeue,
        visibility_timeout=visibility,
        max_polling_interval=polling,
        message_encoding=encoding.lower(),
    )


def _parse_route_prefix(http: Mapping[str, Any], source: str) -> str:
    prefix = http.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise ConfigError(f"{source}: extensions.http.routePrefix: expected a string, found {prefix!r}")
    return prefix.strip("/")


def load_local_settings(path: Path | None) -> LocalSettings:
    """Read local.settings.json (Values, Host.LocalHttpPort and our FunctionKeys map).

    Raises:
        ConfigError: the file is missing, not JSON, encrypted, or holds a value of the wrong type.
    """
    if path is None:
        return LocalSettings()
    if not path.exists():
        raise ConfigError(f"settings file {path} does not exist")
    doc = _mapping(_read_json(path), where=str(path))
    if doc.get("IsEncrypted", False) is not False:
        raise ConfigError(f"{path}: IsEncrypted: the mini-host reads plain values only; expected false")
    values = _string_map(doc.get("Values", {}), where=f"{path}: Values")
    host = _mapping(doc.get("Host", {}), where=f"{path}: Host")
    port = host.get("LocalHttpPort")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
        raise ConfigError(f"{path}: Host.LocalHttpPort: expected a port number 0-65535, found {port!r}")
    keys = _string_map(doc.get("FunctionKeys", {}), where=f"{path}: FunctionKeys")
    empty = sorted(name for name, key in keys.items() if not name or not key)
    if empty:
        raise ConfigError(f"{path}: FunctionKeys: names and keys must be non-empty; check {empty}")
    return LocalSettings(values=values, http_port=port, function_keys=keys)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ConfigError(f"{path}: not valid JSON at {where}: {exc.msg}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


def _mapping(value: object, *, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def _string_map(value: object, *, where: str) -> dict[str, str]:
    mapping = _mapping(value, where=where)
    wrong = sorted(name for name, item in mapping.items() if not isinstance(item, str))
    if wrong:
        raise ConfigError(f"{where}: values must be strings (as in Azure app settings); not strings: {wrong}")
    return dict(mapping)


def _int(doc: Mapping[str, Any], name: str, default: int, low: int, high: int, where: str) -> int:
    value = doc.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}.{name}: expected an integer {low}-{high}, found {value!r}")
    return value

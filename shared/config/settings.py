"""Process settings from the environment: where the app reads its app settings (a few process-level
switches are read where they act: the warm start, the storage I/O threads, the trace sampler)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from shared.errors import ConfigError

__all__ = [
    "APP_ROOT",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_GRAPH_BASE_URL",
    "MAX_GRAPH_TIMEOUT_SECONDS",
    "Settings",
    "StorageSettings",
    "TelemetryMode",
    "WaveGuardEnv",
    "is_loopback_url",
    "load_settings",
    "load_telemetry_settings",
]

TelemetryMode = Literal["auto", "console", "off"]
WaveGuardEnv = Literal["local", "azure"]

# shared/config/settings.py -> the app root (the Function App's wwwroot, or the repository).
APP_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH: Final = "config/waveguard.yaml"
DEFAULT_GRAPH_BASE_URL: Final = "https://graph.microsoft.com/v1.0"
DEFAULT_GRAPH_TIMEOUT_SECONDS: Final = 20.0
# One Graph request may take at most this long: an invocation makes several, plus retries, within
# host.json's functionTimeout (5 minutes). (host.json's visibilityTimeout does not bound it: that is
# the delay before a *failed* message is handed out again; the host keeps a message it is processing
# invisible for as long as the invocation runs.)
MAX_GRAPH_TIMEOUT_SECONDS: Final = 120.0
# The storage emulator's documented well-known account (public; not a secret).
_DEV_STORAGE: Final = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_STORAGE: Final = "AzureWebJobsStorage"


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (an emulator), never at a Microsoft endpoint."""
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """How to reach Azure Storage: a connection string, or service URIs plus managed identity.

    Identity-based connections follow the Functions host convention:
    ``AzureWebJobsStorage__queueServiceUri`` / ``__tableServiceUri`` (or ``__accountName``) and
    ``__clientId`` for a user-assigned identity.
    """

    connection_string: str | None = field(default=None, repr=False)
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None

    @property
    def configured(self) -> bool:
        """True when queues and tables can be reached."""
        return bool(self.connection_string) or bool(self.queue_service_uri and self.table_service_uri)

    @property
    def uses_identity(self) -> bool:
        """True for an identity-based connection (no account key)."""
        return not self.connection_string and self.configured

    def require(self) -> StorageSettings:
        """This object, after checking storage is configured.

        Raises:
            ConfigError: neither a connection string nor service URIs are set.
        """
        if not self.configured:
            raise ConfigError(
                f"environment: {_STORAGE}: not set; give a storage connection string, or "
                f"{_STORAGE}__queueServiceUri and {_STORAGE}__tableServiceUri (or {_STORAGE}__accountName) "
                "for an identity-based connection",
                file="environment",
                field=_STORAGE,
            )
        return self


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process needs from its environment, validated once at start."""

    storage: StorageSettings = field(default_factory=StorageSettings)
    config_path: Path = APP_ROOT / DEFAULT_CONFIG_PATH
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    graph_timeout_seconds: float = DEFAULT_GRAPH_TIMEOUT_SECONDS
    azure_client_id: str | None = None
    applicationinsights_connection_string: str | None = field(default=None, repr=False)
    otlp_endpoint: str | None = None
    telemetry: TelemetryMode = "auto"
    environment: WaveGuardEnv = "local"
    # The environment the settings came from, kept for ${VAR} interpolation of the plan file.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def graph_is_emulator(self) -> bool:
        """True when Graph is a loopback emulator (no Microsoft credential is used)."""
        return is_loopback_url(self.graph_base_url)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default: the process environment).

    Raises:
        ConfigError: one or more variables are invalid; the message lists each as
            ``environment: <VARIABLE>: <problem>``.
    """
    env: Mapping[str, str] = dict(os.environ) if environ is None else environ
    problems: list[str] = []
    settings = Settings(
        storage=_storage_settings(env, problems),
        config_path=_config_path(env),
        graph_base_url=_graph_base_url(env, problems),
        graph_timeout_seconds=_graph_timeout(env, problems),
        azure_client_id=_optional(env, "AZURE_CLIENT_ID"),
        applicationinsights_connection_string=_optional(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        otlp_endpoint=_otlp_endpoint(env, problems),
        telemetry=_choice(env, "WAVEGUARD_TELEMETRY", ("auto", "console", "off"), "auto", problems),
        environment=_choice(env, "WAVEGUARD_ENV", ("local", "azure"), _default_env(env), problems),
        environ=env,
    )
    if problems:
        raise ConfigError(
            "invalid settings:\n" + "\n".join(f"  {p}" for p in problems),
            file="environment",
            problems=problems,
        )
    return settings


def load_telemetry_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Only what telemetry needs, never raising: a bad value is left out (``load_settings`` and
    ``/api/health/details`` name it). Lets the app start tracing however broken its settings are."""
    env: Mapping[str, str] = dict(os.environ) if environ is None else environ
    otlp_problems: list[str] = []
    otlp = _otlp_endpoint(env, otlp_problems)
    mode_problems: list[str] = []
    modes: tuple[TelemetryMode, ...] = ("auto", "console", "off")
    mode = _choice(env, "WAVEGUARD_TELEMETRY", modes, "auto", mode_problems)
    environment_problems: list[str] = []
    places: tuple[Literal["local", "azure"], ...] = ("local", "azure")
    environment = _choice(env, "WAVEGUARD_ENV", places, _default_env(env), environment_problems)
    if environment_problems:  # a bad value: where the process runs decides
        environment = "azure" if _default_env(env) == "azure" else "local"
    return Settings(
        applicationinsights_connection_string=_optional(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        otlp_endpoint=None if otlp_problems else otlp,
        telemetry=mode if not mode_problems else "auto",
        # On Azure the exporter authenticates with the managed identity (local auth is off).
        environment=environment,
        azure_client_id=_optional(env, "AZURE_CLIENT_ID"),
        environ=env,
    )


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _default_env(env: Mapping[str, str]) -> str:
    # App Service / Functions set WEBSITE_INSTANCE_ID on every Azure worker.
    return "azure" if env.get("WEBSITE_INSTANCE_ID") else "local"


def _storage_settings(env: Mapping[str, str], problems: list[str]) -> StorageSettings:
    connection = _optional(env, _STORAGE)
    if connection and connection.replace(" ", "").lower() == "usedevelopmentstorage=true":
        connection = _DEV_STORAGE
    if connection and "=" not in connection:
        problems.append(f"environment: {_STORAGE}: expected a connection string of key=value pairs")
    account = _optional(env, f"{_STORAGE}__accountName")
    queue_uri = _optional(env, f"{_STORAGE}__queueServiceUri")
    table_uri = _optional(env, f"{_STORAGE}__tableServiceUri")
    if account:
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
    for suffix, uri in (("queueServiceUri", queue_uri), ("tableServiceUri", table_uri)):
        if uri and urlsplit(uri).scheme not in ("http", "https"):
            problems.append(f"environment: {_STORAGE}__{suffix}: expected an http(s) URL")
    if not connection and bool(queue_uri) != bool(table_uri):
        missing = "tableServiceUri" if queue_uri else "queueServiceUri"
        problems.append(f"environment: {_STORAGE}__{missing}: required for an identity-based connection")
    return StorageSettings(
        connection_string=connection,
        queue_service_uri=queue_uri,
        table_service_uri=table_uri,
        client_id=_optional(env, f"{_STORAGE}__clientId") or _optional(env, "AZURE_CLIENT_ID"),
    )


def _config_path(env: Mapping[str, str]) -> Path:
    path = Path(_optional(env, "WAVEGUARD_CONFIG") or DEFAULT_CONFIG_PATH)
    return path if path.is_absolute() else APP_ROOT / path


def _graph_base_url(env: Mapping[str, str], problems: list[str]) -> str:
    url = (_optional(env, "GRAPH_BASE_URL") or DEFAULT_GRAPH_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"environment: GRAPH_BASE_URL: expected an http(s) URL, got {url!r}")
    elif parts.scheme == "http" and not is_loopback_url(url):
        problems.append("environment: GRAPH_BASE_URL: plain http is only allowed for a loopback emulator")
    return url


def _graph_timeout(env: Mapping[str, str], problems: list[str]) -> float:
    raw = _optional(env, "GRAPH_TIMEOUT_SECONDS")
    if raw is None:
        return DEFAULT_GRAPH_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_GRAPH_TIMEOUT_SECONDS:
        problems.append(
            f"environment: GRAPH_TIMEOUT_SECONDS: expected seconds above 0 and at most "
            f"{MAX_GRAPH_TIMEOUT_SECONDS:g} (an invocation makes several Graph calls within "
            f"functionTimeout), got {raw!r}"
        )
        return DEFAULT_GRAPH_TIMEOUT_SECONDS
    return value


def _otlp_endpoint(env: Mapping[str, str], problems: list[str]) -> str | None:
    url = _optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if url and urlsplit(url).scheme not in ("http", "https"):
        problems.append(f"environment: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http(s) URL, got {url!r}")
    return url


def _choice[T: str](
    env: Mapping[str, str], name: str, allowed: tuple[T, ...], default: str, problems: list[str]
) -> T:
    value = (_optional(env, name) or default).lower()
    for option in allowed:
        if value == option:
            return option
    problems.append(f"environment: {name}: expected one of {', '.join(allowed)}, got {value!r}")
    return allowed[0]

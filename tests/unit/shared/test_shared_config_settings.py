"""Settings from an environment mapping (tests pass dicts; nothing patches os.environ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import APP_ROOT, load_settings
from shared.errors import ConfigError

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "QueueEndpoint=http://127.0.0.1:5001/devstoreaccount1;TableEndpoint=http://127.0.0.1:5002/devstoreaccount1;"
)


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = load_settings({})
    assert settings.config_path == APP_ROOT / "config" / "waveguard.yaml"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph_timeout_seconds == 20
    assert settings.telemetry == "auto"
    assert settings.environment == "local"
    assert not settings.graph_is_emulator
    assert not settings.storage.configured


def test_a_full_local_environment() -> None:
    settings = load_settings(
        {
            "AzureWebJobsStorage": AZURITE,
            "WAVEGUARD_CONFIG": "/etc/waveguard/plan.yaml",
            "GRAPH_BASE_URL": "http://127.0.0.1:7072/v1.0/",
            "GRAPH_TIMEOUT_SECONDS": "7.5",
            "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "WAVEGUARD_TELEMETRY": "Console",
            "WAVEGUARD_ENV": "local",
        }
    )
    assert settings.storage.connection_string == AZURITE
    assert not settings.storage.uses_identity
    assert settings.config_path == Path("/etc/waveguard/plan.yaml")
    assert settings.graph_base_url == "http://127.0.0.1:7072/v1.0"
    assert settings.graph_is_emulator
    assert settings.graph_timeout_seconds == 7.5
    assert settings.telemetry == "console"
    # Secrets stay out of logs that print the settings.
    assert "InstrumentationKey" not in repr(settings)
    assert "AccountKey" not in repr(settings)


def test_a_relative_config_path_is_relative_to_the_app_root() -> None:
    assert (
        load_settings({"WAVEGUARD_CONFIG": "config/other.yaml"}).config_path == APP_ROOT / "config/other.yaml"
    )


def test_identity_based_storage_from_service_uris_or_account_name() -> None:
    by_uri = load_settings(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://wg.queue.core.windows.net",
            "AzureWebJobsStorage__tableServiceUri": "https://wg.table.core.windows.net",
            "AzureWebJobsStorage__clientId": "client-1",
        }
    ).storage
    assert by_uri.uses_identity
    assert by_uri.client_id == "client-1"
    by_account = load_settings({"AzureWebJobsStorage__accountName": "wgstore", "WEBSITE_INSTANCE_ID": "x"})
    assert by_account.storage.queue_service_uri == "https://wgstore.queue.core.windows.net"
    assert by_account.storage.table_service_uri == "https://wgstore.table.core.windows.net"
    assert by_account.environment == "azure"


def test_use_development_storage_means_the_local_emulator() -> None:
    storage = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).storage
    assert storage.connection_string is not None
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in storage.connection_string


def test_storage_is_required_only_where_it_is_used() -> None:
    with pytest.raises(ConfigError, match="AzureWebJobsStorage: not set"):
        load_settings({}).storage.require()


def test_every_bad_variable_is_reported_at_once_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "GRAPH_TIMEOUT_SECONDS": "150",
                "GRAPH_BASE_URL": "http://graph.example.com/v1.0",
                "WAVEGUARD_TELEMETRY": "loud",
                "WAVEGUARD_ENV": "prod",
                "AzureWebJobsStorage__queueServiceUri": "https://wg.queue.core.windows.net",
            }
        )
    fields = [p.split(": ")[1] for p in caught.value.problems]
    assert fields == [
        "AzureWebJobsStorage__tableServiceUri",
        "GRAPH_BASE_URL",
        "GRAPH_TIMEOUT_SECONDS",
        "WAVEGUARD_TELEMETRY",
        "WAVEGUARD_ENV",
    ]
    assert "at most 120 (an invocation makes several Graph calls within functionTimeout), got '150'" in str(
        caught.value
    )
    assert all(p.startswith("environment: ") for p in caught.value.problems)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "120.5", "inf"])
def test_graph_timeout_must_be_positive_and_at_most_two_minutes(value: str) -> None:
    with pytest.raises(ConfigError, match="GRAPH_TIMEOUT_SECONDS"):
        load_settings({"GRAPH_TIMEOUT_SECONDS": value})


@pytest.mark.parametrize("value", ["30", "45", "120"])
def test_a_graph_timeout_above_the_visibility_timeout_is_fine(value: str) -> None:
    # visibilityTimeout (30 s) is the delay before a failed message reappears, not a processing lease
    assert load_settings({"GRAPH_TIMEOUT_SECONDS": value}).graph_timeout_seconds == float(value)

"""Azure credentials for identity-based connections (storage, Graph); built only when needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.config.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = ["azure_credential", "storage_credential"]


def azure_credential(settings: Settings, *, client_id: str | None = None) -> TokenCredential:
    """Managed identity on Azure (user-assigned when a client id is given); the developer chain locally."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = client_id or settings.azure_client_id
    if settings.environment == "azure":
        # Straight to the identity endpoint: no probing of developer credentials on workers.
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def storage_credential(settings: Settings) -> TokenCredential:
    """The credential for identity-based storage (``AzureWebJobsStorage__clientId`` if set)."""
    return azure_credential(settings, client_id=settings.storage.client_id)

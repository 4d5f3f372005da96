"""Group writes: add and remove one member (idempotent), create a security group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shared.errors import PermanentError
from shared.graph.errors import delete_if_present, graph_error_info, to_waveguard_error

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["ALREADY_MEMBER", "add_member", "create_security_group", "remove_member"]

# Graph's 400 for a member that is already there: for us, the add has happened.
ALREADY_MEMBER: Final = "added object references already exist"


async def add_member(client: GraphServiceClient, group_id: str, member_id: str) -> bool:
    """Add ``member_id`` to the group; False when it already was a member (success either way).

    Raises:
        NotFoundError: the group or the member does not exist.
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    from msgraph.generated.models.reference_create import ReferenceCreate

    base = str(client.request_adapter.base_url).rstrip("/")
    body = ReferenceCreate(odata_id=f"{base}/directoryObjects/{member_id}")
    try:
        await client.groups.by_group_id(group_id).members.ref.post(body)
    except Exception as exc:
        info = graph_error_info(exc)
        if info is not None and info.status == 400 and ALREADY_MEMBER in (info.message or "").lower():
            return False
        raise to_waveguard_error(exc, operation="add group member") from exc
    return True


async def remove_member(client: GraphServiceClient, group_id: str, member_id: str) -> bool:
    """Remove ``member_id`` from the group; False when it was not a member (success either way).

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    member = client.groups.by_group_id(group_id).members.by_directory_object_id(member_id)
    return await delete_if_present(member.ref.delete(), operation="remove group member")


async def create_security_group(client: GraphServiceClient, display_name: str, *, description: str) -> str:
    """Create a security group (not mail-enabled); returns its id.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request or returned no id.
    """
    import re
    import uuid

    from shared.graph.client import request_json

    nickname = (re.sub(r"[^A-Za-z0-9]", "", display_name)[:40] or "waveguard") + uuid.uuid4().hex[:8]
    body = {
        "displayName": display_name,
        "description": description,
        "mailEnabled": False,
        "mailNickname": nickname,
        "securityEnabled": True,
    }
    # Raw JSON: parsing the answer as a Group model would load msgraph's ~1,300 model classes.
    created = await request_json(client, "POST", "/groups", body, operation="create group")
    if not created or not created.get("id"):
        raise PermanentError("Graph created a group but returned no id", display_name=display_name)
    return str(created["id"])


async def delete_group(client: GraphServiceClient, group_id: str) -> bool:
    """Delete a group (it goes to Entra's deleted items for 30 days); False when already gone.

    Raises:
        RetryableError: Graph throttled, failed or could not be reached.
        PermanentError: Graph refused the request.
    """
    return await delete_if_present(client.groups.by_group_id(group_id).delete(), operation="delete group")

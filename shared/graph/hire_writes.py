"""A hire's last two Graph writes in one ``$batch``: send the saved draft that carries the TAP, and
add the hire to the wave's group.

The two are independent (the draft was checkpointed before, the group add is idempotent), so Graph
runs them side by side and each is settled on its own: a caller learns that the e-mail went out even
when the group add failed, and that the group add happened even when the send failed. An item Graph
throttled (429, or 503 with Retry-After: not executed) is sent again in-process, alone, after its
own Retry-After (``BatchClient.send_writes``: the retry middleware sees only the outer batch). Any
other failure is returned as the item's error: a send that failed on the server side is never
repeated here, because it may have happened (the caller reads the draft's state first).

The break-glass guard checks the batch's member add like a single one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import NotFoundError
from shared.graph.batch import (
    READ_MAX_WAIT_SECONDS,
    READ_ROUNDS,
    BatchClient,
    BatchRequest,
    BatchResponse,
    item_error,
)
from shared.graph.groups import ALREADY_MEMBER
from shared.graph.mail import IMMUTABLE_IDS
from shared.graph.users_json import segment

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

__all__ = ["SendAndJoin", "send_draft_and_add_member"]

_SEND, _JOIN = "send", "join"


@dataclass(frozen=True, slots=True)
class SendAndJoin:
    """What each write did: ``sent`` is None once the e-mail is out, else why not; ``joined`` is
    True (added), False (already a member) or why the add failed."""

    sent: Exception | None
    joined: bool | Exception


async def send_draft_and_add_member(
    client: GraphServiceClient,
    sender: str,
    message_id: str,
    group_id: str,
    member_id: str,
    *,
    rounds: int = READ_ROUNDS,
    max_wait: float = READ_MAX_WAIT_SECONDS,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> SendAndJoin:
    """Send draft ``message_id`` from ``sender`` and add ``member_id`` to ``group_id``, together.

    Raises:
        RetryableError / PermanentError: the batch itself failed (neither outcome is known).
        SafetyViolationError: the guard refused the member add (nothing was sent).
    """
    base = str(client.request_adapter.base_url).rstrip("/")
    requests = {
        # The same request as a single send (shared.graph.mail.send_draft) and member add.
        _SEND: BatchRequest(
            _SEND, "POST", f"/users/{sender}/messages/{message_id}/send", headers=IMMUTABLE_IDS
        ),
        _JOIN: BatchRequest(
            _JOIN,
            "POST",
            f"/groups/{segment(group_id)}/members/$ref",
            body={"@odata.id": f"{base}/directoryObjects/{member_id}"},
        ),
    }
    answers = await BatchClient.for_graph(client).send_writes(
        list(requests.values()), rounds=rounds, max_wait=max_wait, sleep=sleep
    )
    return _settle(answers[_SEND], answers[_JOIN], message_id=message_id)


def _settle(send: BatchResponse, join: BatchResponse, *, message_id: str) -> SendAndJoin:
    """Each item's outcome from its sub-response (a throttled one, after the last round, is a
    retryable error with Graph's Retry-After)."""
    sent: Exception | None = None
    if send.status == 404:
        sent = NotFoundError("the draft to send no longer exists", message_id=message_id)
    elif not send.ok:
        sent = item_error(send, "the e-mail's send")
    joined: bool | Exception
    if join.ok:
        joined = True
    elif join.status == 400 and ALREADY_MEMBER in join.error_message.lower():
        joined = False
    elif join.status == 404:
        joined = NotFoundError("the group or the member does not exist")
    else:
        joined = item_error(join, "the wave group's member add")
    return SendAndJoin(sent=sent, joined=joined)

"""The emulator as an ``httpx`` transport: the same Graph, in process and without sockets.

For tests that drive many runs quickly (property tests): ``build_graph_client(settings,
http_client=httpx.AsyncClient(transport=emulator_transport(emulator)))`` talks to ``emulator``
exactly as over HTTP, through the SDK's real middleware.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

import httpx

from local.graph_emulator.app import Emulator
from local.graph_emulator.routing import Request

__all__ = ["emulator_transport"]


def emulator_transport(emulator: Emulator) -> httpx.MockTransport:
    """A transport that answers every request from ``emulator``."""

    def handle(request: httpx.Request) -> httpx.Response:
        request_id = str(uuid.uuid4())
        answer = emulator.handle(
            Request(
                method=request.method.upper(),
                path=request.url.path or "/",
                query=parse_qsl(request.url.query.decode(), keep_blank_values=True),
                headers=dict(request.headers),
                body=request.read(),
                request_id=request_id,
                client_request_id=request.headers.get("client-request-id") or request_id,
                origin=f"{request.url.scheme}://{request.url.netloc.decode()}",
            )
        )
        headers = {"content-type": answer.content_type, **answer.headers}
        return httpx.Response(answer.status, headers=headers, content=answer.encoded_body())

    return httpx.MockTransport(handle)

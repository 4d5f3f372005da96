"""One HTTP transport for the storage SDKs whose connection pool fits WaveGuard's I/O threads.

The SDKs' default ``requests`` session keeps 10 connections per host; with more threads than that
talking to one account (``shared.offload.IO_THREADS``), every extra connection is opened and
thrown away again ("connection pool is full"). A client built on this transport keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.offload import IO_THREADS

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport

__all__ = ["pooled_transport"]


def pooled_transport(*, connection_timeout: float, read_timeout: float) -> RequestsTransport:
    """A ``requests`` transport with a pool of ``IO_THREADS`` connections per host."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, IO_THREADS))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )

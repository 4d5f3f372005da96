"""The HTTP transport under WaveGuard's storage clients (queues and tables).

``http.client`` on pooled keep-alive connections (``shared.http_client_transport``), with the SDKs'
own ``requests`` transport for what that does not take (a proxy configured, a client certificate,
a body that is not bytes or ASCII text). Both keep ``IO_THREADS`` connections per host: the SDKs'
default ``requests`` session keeps 10, and with more threads than that talking to one account
every extra connection would be opened and thrown away again ("connection pool is full").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.offload import IO_THREADS

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport, RequestsTransport

__all__ = ["pooled_transport", "requests_transport"]

_POOL: int = max(10, IO_THREADS)


def pooled_transport(*, connection_timeout: float, read_timeout: float) -> HttpTransport:  # type: ignore[type-arg]
    """The storage clients' transport: ``http.client`` first, ``requests`` for the rest."""
    from shared.http_client_transport import HttpClientTransport

    return HttpClientTransport(
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
        pool_size=_POOL,
        fallback=lambda: requests_transport(connection_timeout=connection_timeout, read_timeout=read_timeout),
    )


def requests_transport(*, connection_timeout: float, read_timeout: float) -> RequestsTransport:
    """A ``requests`` transport with a pool of ``IO_THREADS`` connections per host."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=_POOL)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )

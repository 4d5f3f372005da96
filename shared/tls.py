"""One TLS context per process for WaveGuard's ``httpx`` clients (Graph, receivers, health).

``httpx`` builds a context for every client it creates: loading the CA bundle costs about 16 ms of
CPU each time. Graph clients are made once per event loop and a receiver's client once per post,
so the first hire on a loop and every alert delivery paid it. The context is the one ``httpx``
itself would build (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else ``certifi``), made once; an
``SSLContext`` is safe to share between connections and threads.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

__all__ = ["httpx_tls"]


@functools.cache
def httpx_tls() -> ssl.SSLContext:
    """The process's TLS context for ``httpx`` clients (verifying, as ``httpx`` defaults)."""
    import httpx

    return httpx.create_ssl_context()

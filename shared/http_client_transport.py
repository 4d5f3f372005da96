"""An azure-core transport over the standard library's ``http.client``, for the storage SDKs.

The SDKs' default transport sends through ``requests`` and ``urllib3``: per request it reads the
environment's proxy settings (every variable, lower-cased), looks for a ``.netrc``, merges session
settings and wraps the answer twice. For a queue message that is about 0.5 ms of client CPU on top
of the 0.1 ms the request itself costs, and an accepted HR webhook is one such request. This sends
the same request, with the pipeline's own headers (authorization, version, date, request id), on a
pooled keep-alive connection, and hands the pipeline an ``azure.core.rest`` response with the body
read.

It takes the common case only and hands anything else, unchanged, to the ``requests`` transport
given as ``fallback``: a proxy (in the environment or per request), a client certificate, a body
that is not bytes or ASCII text, a legacy ``pipeline.transport`` request, or an option it does not
know. TLS is verified as ``requests`` verifies it: against the CA bundle named by
``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, else ``certifi``'s, or the CA file given as
``connection_verify``. A streamed answer is read whole when it arrives: queues and tables answer in
at most a few MiB, and the caller still reads it as a stream.

Errors are azure-core's, as the ``requests`` transport raises them, so the storage retry policy
treats them alike: no connection (refused, TLS, DNS) is ``ServiceRequestError`` (its timeout
``ServiceRequestTimeoutError``); a connection lost after the request went out is
``ServiceResponseError`` (its timeout ``ServiceResponseTimeoutError``). A pooled connection the
server has closed while idle is noticed before reuse and replaced.
"""

from __future__ import annotations

import http.client
import os
import re
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import CaseInsensitiveDict

if TYPE_CHECKING:
    from azure.core.rest import HttpResponse

__all__ = ["HttpClientTransport", "default_ca", "direct_allowed"]

# Per-request options this transport honours itself; any other goes to the fallback.
_OPTIONS: Final = frozenset({"connection_timeout", "read_timeout", "stream", "connection_verify"})
_LOST: Final = (http.client.HTTPException, OSError)  # OSError: resets, broken pipes, TLS
# A URL that goes on the wire as it is: printable ASCII, no space (requests would quote the rest).
_WIRE_READY: Final = re.compile(r"[!-~]+")


def direct_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether requests may go out directly: no HTTP(S) proxy configured where ``requests`` looks
    (the environment's ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, any case, and on Windows and
    macOS the system's settings); the fallback keeps honouring one. ``NO_PROXY`` alone changes
    nothing."""
    if environ is None:
        import urllib.request

        found = urllib.request.getproxies()
    else:
        found = {
            name.lower().removesuffix("_proxy"): value
            for name, value in environ.items()
            if value and name.lower().endswith("_proxy")
        }
    return not any(found.get(scheme) for scheme in ("http", "https", "all"))


def default_ca(environ: Mapping[str, str] | None = None) -> str:
    """The CA bundle ``requests`` verifies against: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``,
    else ``certifi``'s."""
    env = os.environ if environ is None else environ
    named = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    if named:
        return named
    import certifi

    return str(certifi.where())


class HttpClientTransport(HttpTransport):  # type: ignore[type-arg]
    """Sends ``azure.core.rest`` requests on pooled ``http.client`` connections (thread-safe).

    ``fallback`` is built on first need: the transport every request this one does not take goes
    to. ``direct`` False sends everything there (a proxy configured); None decides from the
    environment (``direct_allowed``).
    """

    def __init__(
        self,
        *,
        connection_timeout: float,
        read_timeout: float,
        pool_size: int,
        fallback: Callable[[], HttpTransport],  # type: ignore[type-arg]
        direct: bool | None = None,
    ) -> None:
        self._connection_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._pool_size = pool_size
        self._make_fallback = fallback
        self._fallback: HttpTransport | None = None  # type: ignore[type-arg]
        self._direct = direct_allowed() if direct is None else direct
        self._idle: dict[tuple[str, str, int, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}

    # -- HttpTransport -------------------------------------------------------------------------

    def open(self) -> None:
        """Nothing to open: connections are made on first use."""

    def close(self) -> None:
        """Close every idle connection (and the fallback's session)."""
        with self._lock:
            idle, self._idle = self._idle, {}
            fallback = self._fallback
        for connections in idle.values():
            for connection in connections:
                connection.close()
        if fallback is not None:
            fallback.close()

    def __enter__(self) -> HttpClientTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Send ``request``; its answer with the body read (or the fallback's answer).

        Raises:
            ServiceRequestError / ServiceRequestTimeoutError: no connection could be made.
            ServiceResponseError / ServiceResponseTimeoutError: the connection was lost or timed
                out after the request went out.
        """
        body = self._direct_body(request, kwargs)
        if body is None:
            return self._fallback_transport().send(request, **kwargs)
        verify = kwargs.get("connection_verify", True)
        connect_timeout = _seconds(kwargs.get("connection_timeout", self._connection_timeout))
        read_timeout = _seconds(kwargs.get("read_timeout", self._read_timeout))
        return self._exchange(request, body, verify, connect_timeout, read_timeout)

    # -- the direct path -----------------------------------------------------------------------

    def _direct_body(self, request: Any, kwargs: Mapping[str, Any]) -> bytes | None:
        """The body to send directly, or None where the fallback must take the request."""
        if not self._direct or not isinstance(request, HttpRequest):
            return None
        if kwargs.get("proxies") or not _OPTIONS.issuperset(kwargs):
            return None
        verify = kwargs.get("connection_verify", True)
        if verify is not True and verify is not False and not isinstance(verify, str):
            return None
        if getattr(request, "_files", None) is not None:
            return None
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or parts.username is not None or not parts.hostname:
            return None  # credentials in the URL, or no host: requests' own handling
        if not _WIRE_READY.fullmatch(request.url):
            return None  # a character requests would percent-encode first (the SDKs send none)
        content = getattr(request, "_data", None)
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, str) and content.isascii():  # Content-Length was counted in characters
            return content.encode("ascii")
        return None

    def _exchange(
        self,
        request: HttpRequest,
        body: bytes,
        verify: bool | str,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> HttpResponse:
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, host, port, str(verify))
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection = self._take(key)
        if connection is None:
            connection = self._connect(parts.scheme, host, port, verify, connect_timeout)
        try:
            sock = connection.sock
            if sock is not None:
                sock.settimeout(read_timeout)
            headers = _wire_headers(request, body)
            cut_short = False
            try:
                connection.request(request.method, target, body=body or None, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The service may have answered (413, 403) and closed without reading the whole
                # body: its answer is still to be read, as urllib3 reads it.
                cut_short = True
            answer = connection.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            connection.close()
            raise ServiceResponseTimeoutError(
                f"{request.method} {host}: no answer in {read_timeout} s", error=exc
            ) from exc
        except _LOST as exc:
            connection.close()
            raise ServiceResponseError(
                f"{request.method} {host}: the connection was lost ({exc!r})", error=exc
            ) from exc
        except BaseException:
            connection.close()  # half a request on it: never pooled
            raise
        if answer.will_close or cut_short:
            connection.close()
        else:
            self._give_back(key, connection)
        return _Answer.of(request, answer, content)

    def _connect(
        self, scheme: str, host: str, port: int, verify: bool | str, timeout: float | None
    ) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = None
        try:
            if scheme == "https":
                context = self._context(verify)  # a CA bundle that does not load fails here
                connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            connection.connect()
        except TimeoutError as exc:
            if connection is not None:
                connection.close()
            raise ServiceRequestTimeoutError(
                f"no connection to {host}:{port} in {timeout} s", error=exc
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            if connection is not None:
                connection.close()
            raise ServiceRequestError(f"no connection to {host}:{port} ({exc!r})", error=exc) from exc
        sock = connection.sock
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _context(self, verify: bool | str) -> ssl.SSLContext:
        key = str(verify)
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = _tls_context(verify)
                self._contexts[key] = context
            return context

    def _take(self, key: tuple[str, str, int, str]) -> http.client.HTTPConnection | None:
        """An idle connection for ``key`` the server has not closed, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if _still_open(connection):
                return connection
            connection.close()

    def _give_back(self, key: tuple[str, str, int, str], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._pool_size:
                idle.append(connection)
                return
        connection.close()

    def _fallback_transport(self) -> HttpTransport:  # type: ignore[type-arg]
        with self._lock:
            if self._fallback is None:
                self._fallback = self._make_fallback()
            return self._fallback


def _seconds(value: object) -> float | None:
    """A timeout as ``http.client`` takes it: None waits without limit, as in ``requests``."""
    return None if value is None else float(value)  # type: ignore[arg-type]


def _wire_headers(request: HttpRequest, body: bytes) -> dict[str, str]:
    """The request's headers as ``requests`` would send them: a Content-Length for any body, and
    ``0`` on a bodiless request other than GET and HEAD; ``Accept: */*`` where none is set."""
    headers = dict(request.headers.items())
    names = {name.lower() for name in headers}
    if body:
        if "content-length" in names:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
    elif "content-length" not in names and request.method.upper() not in ("GET", "HEAD"):
        headers["Content-Length"] = "0"
    if "accept" not in names:
        headers["Accept"] = "*/*"
    return headers


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    bundle = verify if isinstance(verify, str) else default_ca()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection can be reused: connected, nothing to read (a readable idle socket
    has been closed by the server, or holds bytes nobody asked for)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)  # Windows: no poll
        return not readable
    except (OSError, ValueError):
        return False


def _decoded(content: bytes, encoding: str | None) -> bytes:
    """``content`` decompressed where the server compressed it (it is never asked to)."""
    if not content or not encoding or encoding.strip().lower() in ("identity", ""):
        return content
    if encoding.strip().lower() in ("gzip", "x-gzip", "deflate"):
        return zlib.decompress(content, zlib.MAX_WBITS | 32)
    return content


class _Closed:
    """The internal response: already read and released."""

    def close(self) -> None:
        """Nothing left to release."""


def _whole(response: _Answer, **_: Any) -> Iterator[bytes]:
    yield response.content


class _Answer(HttpResponseImpl):
    """An ``azure.core.rest`` response whose body was read when it arrived."""

    @classmethod
    def of(cls, request: HttpRequest, answer: http.client.HTTPResponse, content: bytes) -> _Answer:
        headers = CaseInsensitiveDict()
        for name, value in answer.getheaders():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = cls(
            request=request,
            internal_response=_Closed(),
            status_code=answer.status,
            reason=answer.reason,
            headers=headers,
            content_type=headers.get("content-type"),
            stream_download_generator=_whole,
        )
        try:
            response._content = _decoded(content, headers.get("content-encoding"))
        except zlib.error as exc:
            raise ServiceResponseError(f"the answer's body does not decompress ({exc})", error=exc) from exc
        return response

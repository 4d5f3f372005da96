"""The storage clients' ``http.client`` transport, driven through azure-core's own pipeline against
stand-in servers over real HTTP (and TLS): what goes out, what comes back, pooled connections, every
way a connection fails, and what it leaves to the ``requests`` transport."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from shared.http_client_transport import HttpClientTransport, default_ca, direct_allowed
from shared.storage_transport import pooled_transport, requests_transport


@dataclass
class Seen:
    """One request as the stand-in server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


@dataclass
class Server:
    """A stand-in HTTP/1.1 server: ``answer`` decides each reply; ``seen`` records each request."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    answer: Callable[[BaseHTTPRequestHandler, Seen], None] | None = None


def _reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server_state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                self.client_address,
            )
            server_state.seen.append(seen)
            if server_state.answer is None:
                _reply(
                    self, 200, b'{"ok": true}', {"Content-Type": "application/json", "x-ms-request-id": "r1"}
                )
            else:
                server_state.answer(self, seen)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    server_state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def proxy() -> Iterator[Server]:
    yield from _serve()


def _transport(**overrides: Any) -> HttpClientTransport:
    options: dict[str, Any] = {
        "connection_timeout": 2.0,
        "read_timeout": 2.0,
        "pool_size": 4,
        "fallback": lambda: requests_transport(connection_timeout=2, read_timeout=2),
        "direct": True,
    }
    options.update(overrides)
    return HttpClientTransport(**options)


def _client(base_url: str, transport: Any) -> PipelineClient[Any, Any]:
    # azure-core's own pipeline around the transport, no retries: each failure shows as it is
    return PipelineClient(base_url, transport=transport, policies=[RetryPolicy(retry_total=0)])


def test_a_request_goes_out_with_its_headers_and_body_and_the_answer_comes_back_whole(server: Server) -> None:
    client = _client(server.url, _transport())
    request = HttpRequest(
        "POST",
        f"{server.url}/q/messages?messagettl=-1",
        content=b"<QueueMessage/>",
        headers={"x-ms-version": "v1"},
    )

    answer = client.send_request(request)

    assert (answer.status_code, answer.reason, answer.json()) == (200, "OK", {"ok": True})
    assert answer.headers["X-MS-REQUEST-ID"] == "r1"
    assert answer.content_type == "application/json"
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/q/messages?messagettl=-1", b"<QueueMessage/>")
    assert seen.headers["x-ms-version"] == "v1"
    assert seen.headers["content-length"] == "15"
    # http.client's marks: the request did not go through requests (which asks for gzip)
    assert seen.headers["accept-encoding"] == "identity"


def test_a_bodiless_delete_says_content_length_zero_as_requests_does(server: Server) -> None:
    client = _client(server.url, _transport())

    client.send_request(HttpRequest("DELETE", f"{server.url}/t/e1"))
    client.send_request(HttpRequest("GET", f"{server.url}/t/e1"))

    assert server.seen[0].headers.get("content-length") == "0"
    assert "content-length" not in server.seen[1].headers


def test_repeated_headers_in_an_answer_are_joined_and_a_streamed_answer_reads_as_a_stream(
    server: Server,
) -> None:
    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        handler.send_response(200)
        handler.send_header("x-ms-meta", "a")
        handler.send_header("x-ms-meta", "b")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in (b"hello ", b"world"):
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    server.answer = answer
    client = _client(server.url, _transport())

    response = client.send_request(HttpRequest("GET", f"{server.url}/chunked"), stream=True)

    assert response.headers["x-ms-meta"] == "a, b"
    assert b"".join(response.iter_bytes()) == b"hello world"


def test_a_compressed_answer_is_decompressed(server: Server) -> None:
    server.answer = lambda h, s: _reply(h, 200, gzip.compress(b'{"v": 1}'), {"Content-Encoding": "gzip"})

    answer = _client(server.url, _transport()).send_request(HttpRequest("GET", f"{server.url}/z"))

    assert answer.json() == {"v": 1}


def test_keep_alive_connections_are_pooled_and_reused(server: Server) -> None:
    client = _client(server.url, _transport())

    for n in range(5):
        client.send_request(HttpRequest("GET", f"{server.url}/n{n}"))

    assert len({seen.peer for seen in server.seen}) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(server: Server) -> None:
    closing = {"now": True}

    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        _reply(handler, 200, b"{}")
        if closing["now"]:
            handler.wfile.flush()
            handler.close_connection = True  # as an idle timeout would, after the answer
            closing["now"] = False

    server.answer = answer
    client = _client(server.url, _transport())

    client.send_request(HttpRequest("GET", f"{server.url}/first"))
    time.sleep(0.2)  # the close reaches the client's idle socket
    second = client.send_request(HttpRequest("GET", f"{server.url}/second"))

    assert second.status_code == 200
    assert len({seen.peer for seen in server.seen}) == 2


def test_an_answer_that_says_connection_close_is_not_pooled(server: Server) -> None:
    server.answer = lambda h, s: _reply(h, 200, b"{}", {"Connection": "close"})
    client = _client(server.url, _transport())

    for n in range(3):
        assert client.send_request(HttpRequest("GET", f"{server.url}/{n}")).status_code == 200

    assert len({seen.peer for seen in server.seen}) == 3


def test_no_listener_is_a_request_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = _client(f"http://127.0.0.1:{port}", _transport())

    with pytest.raises(ServiceRequestError, match=f"no connection to 127.0.0.1:{port}"):
        client.send_request(HttpRequest("GET", f"http://127.0.0.1:{port}/x"))


def test_an_answer_slower_than_the_read_timeout_is_a_response_timeout(server: Server) -> None:
    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        time.sleep(0.6)
        _reply(handler, 200, b"{}")

    server.answer = answer
    client = _client(server.url, _transport(read_timeout=0.2))

    with pytest.raises(ServiceResponseTimeoutError, match=r"no answer in 0\.2 s"):
        client.send_request(HttpRequest("POST", f"{server.url}/slow", content=b"x"))


def test_a_connection_dropped_after_the_request_went_out_is_a_response_error(server: Server) -> None:
    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    server.answer = answer
    client = _client(server.url, _transport())

    with pytest.raises(ServiceResponseError, match="the connection was lost"):
        client.send_request(HttpRequest("POST", f"{server.url}/drop", content=b"x"))


def test_an_answer_the_service_sent_before_reading_the_whole_body_is_read() -> None:
    # GIVEN a service that refuses a body too large without reading it, and closes
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def refuse() -> None:
        peer, _ = listener.accept()
        reader = peer.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass
        error = b"<Error><Code>RequestBodyTooLarge</Code></Error>"
        peer.sendall(
            b"HTTP/1.1 413 The request body is too large\r\nx-ms-error-code: RequestBodyTooLarge\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error)
        )
        time.sleep(0.05)
        reader.close()
        peer.close()  # the unread body makes the kernel reset the connection

    threading.Thread(target=refuse, daemon=True).start()
    url = f"http://127.0.0.1:{port}/q/messages"

    # WHEN a 4 MB body is sent to it
    try:
        answer = _client(url, _transport()).send_request(HttpRequest("POST", url, content=b"x" * 4_200_000))
    finally:
        listener.close()

    # THEN the caller gets the service's answer, not a lost connection (which would be retried)
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (413, "RequestBodyTooLarge")


def test_a_failed_exchange_never_returns_its_connection_to_the_pool(server: Server) -> None:
    fail = {"next": True}

    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        if fail["next"]:
            fail["next"] = False
            time.sleep(0.4)  # the client gave up: this answer must not be read as the next one's
        _reply(handler, 200, seen.path.encode())

    server.answer = answer
    client = _client(server.url, _transport(read_timeout=0.2))

    with pytest.raises(ServiceResponseTimeoutError):
        client.send_request(HttpRequest("GET", f"{server.url}/late"))

    # at once: a connection given back would carry this request and then read /late's answer
    assert client.send_request(HttpRequest("GET", f"{server.url}/next")).content == b"/next"


@dataclass
class Recording:
    """A fallback transport that records what it was given (and answers nothing)."""

    sent: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append((request, kwargs))
        raise ServiceRequestError("recorded")

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("request_", "options"),
    [
        (HttpRequest("POST", "http://127.0.0.1:9/x", content="héllo"), {}),  # not ASCII text
        (HttpRequest("POST", "http://127.0.0.1:9/x", data={"a": "b"}), {}),  # a form
        (HttpRequest("GET", "http://127.0.0.1:9/x"), {"proxies": {"http": "http://proxy:3128"}}),
        (HttpRequest("GET", "http://127.0.0.1:9/x"), {"connection_cert": "/client.pem"}),
        (HttpRequest("GET", "http://127.0.0.1:9/x"), {"an_option_it_does_not_know": 1}),
        (HttpRequest("GET", "http://user:secret@127.0.0.1:9/x"), {}),  # credentials in the URL
        (HttpRequest("GET", "http://127.0.0.1:9/caf\u00e9"), {}),  # requests percent-encodes these
        (HttpRequest("GET", "http://127.0.0.1:9/a b"), {}),
    ],
    ids=[
        "non-ascii-text",
        "form",
        "proxies",
        "client-cert",
        "unknown-option",
        "url-credentials",
        "non-ascii-url",
        "space-in-url",
    ],
)
def test_what_it_does_not_take_goes_to_the_fallback_unchanged(
    request_: HttpRequest, options: dict[str, Any]
) -> None:
    fallback = Recording()
    transport = _transport(fallback=lambda: fallback)

    with pytest.raises(ServiceRequestError, match="recorded"):
        transport.send(request_, **options)

    assert fallback.sent == [(request_, options)]


def test_with_a_proxy_in_the_environment_every_request_goes_through_it(
    server: Server, proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy.answer = lambda h, s: _reply(h, 200, b'{"via": "proxy"}', {"Content-Type": "application/json"})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)

    transport = pooled_transport(connection_timeout=2, read_timeout=2)
    answer = _client(server.url, transport).send_request(HttpRequest("GET", f"{server.url}/through"))

    assert answer.json() == {"via": "proxy"}
    assert [seen.path for seen in proxy.seen] == [f"{server.url}/through"]  # the absolute form: a proxy's
    assert server.seen == []


@pytest.mark.parametrize(
    ("environ", "direct"),
    [
        ({}, True),
        ({"NO_PROXY": "localhost", "no_proxy": "*"}, True),
        ({"HTTPS_PROXY": "http://proxy:3128"}, False),
        ({"http_proxy": "http://proxy:3128"}, False),
        ({"ALL_PROXY": "socks5://proxy:1080"}, False),
        ({"HTTPS_PROXY": ""}, True),
        ({"FTP_PROXY": "http://proxy:3128"}, True),  # never used for storage's https
    ],
)
def test_only_a_proxy_setting_sends_everything_to_requests(environ: dict[str, str], direct: bool) -> None:
    assert direct_allowed(environ) is direct


def test_the_ca_bundle_is_the_one_requests_would_use() -> None:
    import certifi

    assert default_ca({"REQUESTS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/b.pem"}) == "/a.pem"
    assert default_ca({"CURL_CA_BUNDLE": "/b.pem"}) == "/b.pem"
    assert default_ca({}) == certifi.where()


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


def test_tls_is_verified_against_the_ca_it_is_given(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    client = _client(tls_server.url, _transport())

    answer = client.send_request(
        HttpRequest("GET", f"{tls_server.url}/tls"), connection_verify=str(certificate[0])
    )

    assert answer.json() == {"ok": True}


def test_a_certificate_for_another_host_name_is_refused(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    url = tls_server.url.replace("127.0.0.1", "localhost")  # the certificate names 127.0.0.1 only
    client = _client(url, _transport())

    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        client.send_request(HttpRequest("GET", f"{url}/tls"), connection_verify=str(certificate[0]))


def test_a_ca_bundle_that_does_not_load_is_a_request_error(tls_server: Server, tmp_path: Path) -> None:
    bundle = tmp_path / "not-a-bundle.pem"
    bundle.write_text("not a certificate")
    client = _client(tls_server.url, _transport())

    with pytest.raises(ServiceRequestError, match=r"no connection to 127\.0\.0\.1"):
        client.send_request(HttpRequest("GET", f"{tls_server.url}/tls"), connection_verify=str(bundle))


def test_a_certificate_no_trusted_ca_signed_is_refused(
    tls_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    client = _client(tls_server.url, _transport())

    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        client.send_request(HttpRequest("GET", f"{tls_server.url}/tls"))

    assert tls_server.seen == []

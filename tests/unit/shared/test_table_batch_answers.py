"""insert_all reading the Table service's answers: a stand-in Table endpoint over real HTTP answers
each ``$batch`` as scripted (Azure's own answer shapes), and the real TableClient talks to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient

from shared.errors import RetryableError
from shared.state.table_batch import insert_all
from shared.state.tables import TableMissing, storage_errors

# Azurite's well-known development key (a public constant, not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Script:
    """What the stand-in answers to each request, in order (the last repeats), and what it got."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    received: list[tuple[str, str, bytes]] = field(default_factory=list)


def _multipart(*parts: tuple[int, str, bytes]) -> tuple[dict[str, str], bytes]:
    """A 202 ``$batch`` answer as Azure writes it: a changeset of HTTP responses with Content-IDs."""
    changeset = "changesetresponse_0f3bc3c2-3c4b-4f41-b0a0-1b3f2a1f0f0f"
    body = f"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
    for n, (status, reason, payload) in enumerate(parts, 1):
        body += (
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"HTTP/1.1 {status} {reason}\r\nContent-ID: {n}\r\nX-Content-Type-Options: nosniff\r\n"
            "Cache-Control: no-cache\r\nPreference-Applied: return-no-content\r\nDataServiceVersion: 3.0;\r\n"
            "Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
            f"{payload.decode()}\r\n"
        )
    body += f"--{changeset}--\r\n--batchresponse_1--\r\n"
    headers = {"Content-Type": "multipart/mixed; boundary=batchresponse_1"}
    return headers, body.encode()


@pytest.fixture
def endpoint() -> Iterator[tuple[Script, TableClient]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            script.received.append((self.command, self.path, body))
            status, headers, payload = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    client = TableClient.from_connection_string(connection, "wgaudit", retry_total=0)
    yield script, client
    server.shutdown()


ROWS = [{"PartitionKey": "p", "RowKey": f"r{n}", "Action": "tap.create"} for n in range(3)]


def test_azures_answer_with_every_part_stored_is_success(endpoint: tuple[Script, TableClient]) -> None:
    script, table = endpoint
    headers, body = _multipart(*[(204, "No Content", b"")] * 3)
    script.answers.append((202, headers, body))
    insert_all(table, ROWS)
    [(method, path, sent)] = script.received
    assert (method, path) == ("POST", "/devstoreaccount1/$batch")
    assert sent.count(b"POST http://127.0.0.1:") == 3  # one insert part per entity, to the table
    assert b"/devstoreaccount1/wgaudit HTTP/1.1" in sent


def test_an_answer_missing_parts_is_a_fault_to_retry_never_success(
    endpoint: tuple[Script, TableClient],
) -> None:
    script, table = endpoint
    headers, body = _multipart((204, "No Content", b""))
    script.answers.append((202, headers, body))
    with pytest.raises(HttpResponseError) as caught:
        insert_all(table, ROWS)
    assert caught.value.status_code == 502
    with pytest.raises(RetryableError), storage_errors("append"):
        insert_all(table, ROWS)


def test_a_refused_part_raises_its_own_status_and_code(endpoint: tuple[Script, TableClient]) -> None:
    script, table = endpoint
    error = b'{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US","value":"1:exists"}}}'
    headers, body = _multipart((409, "Conflict", error))
    script.answers.append((202, headers, body))
    with pytest.raises(HttpResponseError) as caught:
        insert_all(table, ROWS)
    assert (caught.value.status_code, caught.value.error_code) == (409, "EntityAlreadyExists")  # type: ignore[attr-defined]
    assert "1:exists" in str(caught.value)


def test_a_missing_table_answered_in_xml_or_by_header_is_a_missing_table(
    endpoint: tuple[Script, TableClient],
) -> None:
    script, table = endpoint
    xml = b'<?xml version="1.0"?><error><code>TableNotFound</code><message>gone</message></error>'
    script.answers.append((404, {"Content-Type": "application/xml"}, xml))
    with pytest.raises(TableMissing), storage_errors("append"):
        insert_all(table, ROWS)
    script.answers[:] = [(404, {"x-ms-error-code": "TableNotFound"}, b"")]
    with pytest.raises(TableMissing), storage_errors("append"):
        insert_all(table, ROWS)


def test_typed_values_go_through_the_sdk_and_none_is_left_out(endpoint: tuple[Script, TableClient]) -> None:
    script, table = endpoint
    headers, body = _multipart((204, "No Content", b""))
    script.answers.append((202, headers, body))
    insert_all(table, [{"PartitionKey": "p", "RowKey": "r", "Reason": None, "Action": "a"}])
    assert b'"Reason"' not in script.received[-1][2]
    insert_all(table, [{"PartitionKey": "p", "RowKey": "r", "Count": 3}])
    assert b'"Count": 3' in script.received[-1][2]  # the SDK's own serializer wrote it

"""One Azure Tables transaction of inserts, written as the service's own ``$batch`` request.

``TableClient.submit_transaction`` costs about 4 ms of client CPU for three small entities: it
prepares each part of the multipart request on thread pools made for the call and reads the answer
with the e-mail parser. A hire's audit entries are such a transaction, on every hire. This builds
the same request (one changeset of ``POST /{table}`` parts, as the Table service documents it) as
text and sends it through the table client's own pipeline (its credential, retries and API
version), reading back only each part's status: about 1 ms.

It writes itself only what it can write faithfully: string properties (JSON strings are
``Edm.String``; None is left out, as the SDK does) through a client without a SAS in its URL;
typed properties go through ``submit_transaction``. Errors are azure-core ``HttpResponseError``s
with the service's status and ``error_code``: a part the service refused raises its own (409
``EntityAlreadyExists``: nothing of the transaction was stored), as does a refused transaction
(404 ``TableNotFound``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from shared.storage_requests import send_through, service_error

if TYPE_CHECKING:
    from azure.data.tables import TableClient

__all__ = ["MAX_TRANSACTION_ENTITIES", "insert_all"]

MAX_TRANSACTION_ENTITIES: Final = 100  # the Table service's limit per transaction
_DEFAULT_API_VERSION: Final = "2019-02-02"
_PART_STATUS: Final = re.compile(rb"^HTTP/1\.1 (\d{3})[^\r\n]*\r?\n(.*?)(?=^--|\Z)", re.M | re.S)


def insert_all(table: TableClient, entities: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``entities`` in one transaction: all are stored, or none.

    Raises:
        ValueError: no entities, more than 100, several partitions, or an entity without a RowKey.
        azure.core.exceptions.HttpResponseError: the service refused or failed the transaction or
            one of its parts (its status and ``error_code``: 409 ``EntityAlreadyExists`` when an
            entity exists already; ``TableNotFound``).
        azure.core.exceptions.AzureError: the request could not be sent or answered.
    """
    if not 1 <= len(entities) <= MAX_TRANSACTION_ENTITIES:
        raise ValueError(f"a transaction takes 1 to {MAX_TRANSACTION_ENTITIES} entities")
    if len({entity.get("PartitionKey") for entity in entities}) != 1:
        raise ValueError("a transaction's entities share one PartitionKey")
    if not all(isinstance(entity.get("RowKey"), str) for entity in entities):
        raise ValueError("every entity needs a RowKey")
    # As the SDK does, a property set to None is not written.
    rows = [{name: value for name, value in entity.items() if value is not None} for entity in entities]
    if not fits(table) or not all(isinstance(v, str) for row in rows for v in row.values()):
        table.submit_transaction([("create", row) for row in rows])  # typed values: the SDK's serializer
        return
    from azure.core.rest import HttpRequest

    # The primary endpoint, whatever location mode the client reads from (writes go there).
    account = f"{table.scheme}://{table._primary_hostname}".rstrip("/")
    api_version = str(getattr(table, "api_version", None) or _DEFAULT_API_VERSION)
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [
        f"--{changeset}\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n\r\n"
        f"POST {account}/{table.table_name} HTTP/1.1\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json;odata=minimalmetadata\r\n"
        "Prefer: return-no-content\r\n"
        "DataServiceVersion: 3.0\r\n\r\n"
        f"{json.dumps(row, separators=(',', ':'))}\r\n"
        for row in rows
    ]
    body = (
        f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        + "".join(parts)
        + f"--{changeset}--\r\n--{batch}--\r\n"
    )
    request = HttpRequest(
        "POST",
        f"{account}/$batch",
        content=body.encode("utf-8"),
        headers={
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "x-ms-version": api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Accept": "application/json",
        },
    )
    status, header_code, answer = send_through(table, request)
    if status != 202:
        raise service_error(status, answer, "the transaction was refused", code=header_code)
    statuses = [(int(m.group(1)), m.group(2)) for m in _PART_STATUS.finditer(answer)]
    for part_status, part in statuses:
        if not 200 <= part_status < 300:
            raise service_error(part_status, part, "a part of the transaction was refused")
    if len(statuses) != len(rows):
        # The service answers every part of a stored transaction: anything else is a fault to retry
        # (a retry that finds the entities stored skips them).
        raise service_error(
            502, answer, f"the transaction's answer holds {len(statuses)} of {len(rows)} parts"
        )


def fits(table: TableClient) -> bool:
    """Whether ``insert_all`` can write through this client itself (no SAS in its URL)."""
    return not urlsplit(table.url).query and all(
        hasattr(table, name) for name in ("_client", "_primary_hostname", "scheme")
    )

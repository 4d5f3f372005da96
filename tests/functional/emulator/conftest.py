"""Fixtures for the emulator's conformance tests: one emulator per session, reset before each test,
and msgraph-sdk pointed at it the way WaveGuard's own client will be.

These tests pin Graph's behaviour (shapes, validation, paging, throttling), not the app's
permissions, and many of their calls are ones only an administrator makes (delete a group, a CA
policy): their clients send ``x-emulator-caller: tenant-admin`` and act with every permission. The
permission model itself is tested in ``test_permission_faithful.py`` without that header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from msgraph import GraphServiceClient
from msgraph_core import BaseGraphRequestAdapter, GraphClientFactory

from local.graph_emulator import EmulatorHandle
from local.graph_emulator.permissions import ADMIN_HEADERS


@pytest.fixture
def emulator(emulator_server: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, reset to the demo tenant with Graph's default write budget."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture
async def graph(emulator: EmulatorHandle) -> AsyncIterator[GraphServiceClient]:
    """msgraph-sdk with its default middleware (retry included), anonymous auth, emulator base URL."""
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS)
    )
    adapter = BaseGraphRequestAdapter(AnonymousAuthenticationProvider(), http_client=http_client)
    adapter.base_url = emulator.base_url
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http_client.aclose()


@pytest.fixture
async def http(emulator: EmulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for what msgraph-sdk cannot show: raw bodies, $batch responses, the admin API."""
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as client:
        yield client

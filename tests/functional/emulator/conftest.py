"""Fixtures for the emulator's conformance tests: one emulator per session, reset before each test,
and msgraph-sdk pointed at it the way WaveGuard's own client will be."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from msgraph import GraphServiceClient
from msgraph_core import BaseGraphRequestAdapter, GraphClientFactory

from local.graph_emulator import EmulatorHandle


@pytest.fixture
def emulator(emulator_server: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, reset to the demo tenant with Graph's default write budget."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture
async def graph(emulator: EmulatorHandle) -> AsyncIterator[GraphServiceClient]:
    """msgraph-sdk with its default middleware (retry included), anonymous auth, emulator base URL."""
    http_client = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(timeout=10))
    adapter = BaseGraphRequestAdapter(AnonymousAuthenticationProvider(), http_client=http_client)
    adapter.base_url = emulator.base_url
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http_client.aclose()


@pytest.fixture
async def http(emulator: EmulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for what msgraph-sdk cannot show: raw bodies, $batch responses, the admin API."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client

"""Shared fixtures: every async test runs on asyncio and trio; a fresh local server per test.

``make_client`` builds a client against the local server. Tests written against it run
through ``AsyncVentryx``; the ``client_kind`` parameter is where the sync facade joins in, so a
behaviour is tested once and checked through both clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ventryx import AsyncVentryx, RetryPolicy
from ventryx.testing import LocalServer

# Retries in tests wait milliseconds, not seconds; Retry-After still raises the wait.
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5.0)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local Ventryx server on a real 127.0.0.1 socket, fresh for each test."""
    with LocalServer() as srv:
        yield srv


@pytest.fixture(params=["async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client a shared behaviour test runs through."""
    return str(request.param)


MakeClient = Callable[..., Any]


@pytest.fixture
async def make_client(
    server: LocalServer, client_kind: str, anyio_backend: str
) -> AsyncIterator[MakeClient]:
    """``make_client(**kwargs)``: a client on the local server, closed at teardown."""
    made: list[AsyncVentryx] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("retry_policy", FAST_RETRY)
        client = AsyncVentryx(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> Any:
    """A default client on the local server."""
    return make_client()

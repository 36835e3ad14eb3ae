"""Shared fixtures: every async test runs on asyncio and trio; a fresh local server per test.

``make_client`` builds a client against the local server. Tests written against it run
through ``AsyncVentryx`` on both of its transports (httpx, and aiohttp on asyncio); the
``client_kind`` parameter is where the aiohttp transport and the sync facade join in, so a
behaviour is tested once and checked through every client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from _sync_adapter import ClientAdapter

from ventryx import AsyncVentryx, RetryPolicy
from ventryx.testing import LocalServer
from ventryx_sync import Ventryx

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


@pytest.fixture(params=["async", "aiohttp", "sync"])
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client a shared behaviour test runs through.

    ``async`` is ``AsyncVentryx`` on its default (httpx) transport, ``aiohttp`` the same with
    ``transport="aiohttp"``: asyncio only, so the (trio, aiohttp) combinations are deselected.
    ``sync`` is ``ventryx_sync.Ventryx`` behind ``tests._sync_adapter`` (awaitable calls, async
    iteration). It blocks the event loop, so which loop runs the test does not matter to it:
    the (trio, sync) combinations are deselected too (see ``pytest_collection_modifyitems``).
    """
    return str(request.param)


_NOT_ON_TRIO = frozenset({"sync", "aiohttp"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (reported in the summary, never silently passed) trio runs of the sync client
    and of the aiohttp transport."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = callspec.params if callspec is not None else {}
        on_trio = params.get("anyio_backend") == "trio"
        (drop if on_trio and params.get("client_kind") in _NOT_ON_TRIO else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


MakeClient = Callable[..., Any]


@pytest.fixture
async def make_client(
    server: LocalServer, client_kind: str, anyio_backend: str
) -> AsyncIterator[MakeClient]:
    """``make_client(**kwargs)``: a client on the local server, closed at teardown."""
    made: list[AsyncVentryx | ClientAdapter] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("retry_policy", FAST_RETRY)
        client: AsyncVentryx | ClientAdapter
        if client_kind == "sync":
            client = ClientAdapter(Ventryx(**kwargs))
        else:
            if client_kind == "aiohttp" and "http_client" not in kwargs:
                kwargs["transport"] = "aiohttp"
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

"""Shared fixtures: every async test runs on asyncio and trio; a fresh local server per test.

``make_client`` builds a client against the local server. Tests written against it run
through ``AsyncVentryx``; the ``client_kind`` parameter is where the sync facade joins in, so a
behaviour is tested once and checked through both clients.
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


@pytest.fixture(params=["async", "sync"])
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client a shared behaviour test runs through.

    ``sync`` is ``ventryx_sync.Ventryx`` behind ``tests._sync_adapter`` (awaitable calls, async
    iteration). It blocks the event loop, so which loop runs the test does not matter to it:
    the (trio, sync) combinations are deselected (see ``pytest_collection_modifyitems``).
    """
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (reported in the summary, never silently passed) trio runs of the sync client."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = callspec.params if callspec is not None else {}
        sync_on_trio = params.get("client_kind") == "sync" and params.get("anyio_backend") == "trio"
        (drop if sync_on_trio else keep).append(item)
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
        client = (
            AsyncVentryx(**kwargs) if client_kind == "async" else ClientAdapter(Ventryx(**kwargs))
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> Any:
    """A default client on the local server."""
    return make_client()

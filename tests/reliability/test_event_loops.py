"""Event-loop affinity: one AsyncVentryx across several loops, and a client after close().

An owned pool is replaced by a fresh one when the client meets another loop (a second
``asyncio.run()``, asyncio then trio); an injected ``httpx.AsyncClient`` cannot be, so that is
a ``ConfigurationError`` naming ``http_client`` and the fix. Plain (sync) tests: each starts
its own loops.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator

import httpx
import pytest
import trio

import ventryx
from ventryx import AsyncVentryx
from ventryx.testing import LocalServer
from ventryx_sync import Ventryx

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(60)]


@pytest.fixture
def local() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def _client(server: LocalServer, **kwargs: object) -> AsyncVentryx:
    return AsyncVentryx(server.api_key, base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def test_one_client_in_two_asyncio_runs(local: LocalServer) -> None:
    client = _client(local)

    async def emit(n: int) -> str:
        return (await client.events.emit(type="t", data={"n": n})).id

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = asyncio.run(emit(1))
        second = asyncio.run(emit(2))  # the first loop (and its sockets) are gone
        third = asyncio.run(emit(3))
        gc.collect()
    assert len({first, second, third}) == 3
    asyncio.run(client.aclose())
    assert [e["data"]["n"] for e in local.ledger.events] == [1, 2, 3]


def test_one_client_on_asyncio_then_trio_then_asyncio(local: LocalServer) -> None:
    client = _client(local)

    async def retrieve_all() -> int:
        page = await client.events.list()
        return len(page.data)

    async def emit() -> None:
        await client.events.emit(type="t")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(emit())
        assert trio.run(retrieve_all) == 1
        trio.run(emit)
        assert asyncio.run(retrieve_all()) == 2
        gc.collect()
    trio.run(client.aclose)


def test_with_options_copies_follow_the_loop_too(local: LocalServer) -> None:
    client = _client(local)
    copy = client.with_options(max_retries=0)
    asyncio.run(client.events.emit(type="t"))
    trio.run(lambda: copy.events.emit(type="t"))
    asyncio.run(client.events.emit(type="t"))
    asyncio.run(client.aclose())
    assert len(local.ledger.events) == 3


def test_an_injected_client_on_another_loop_is_a_clear_error() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        event = {"id": "evt_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z"}
        return httpx.Response(200, json={"data": event})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncVentryx("vx_k", base_url="http://127.0.0.1:9/v1", http_client=http)
    asyncio.run(client.events.emit(type="t"))
    with pytest.raises(ventryx.ConfigurationError) as info:
        asyncio.run(client.events.emit(type="t"))
    message = str(info.value)
    assert "http_client" in message
    assert "event loop" in message
    assert "inside the event loop" in message
    assert len(sent) == 1  # nothing sent on the wrong loop


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_call_after_close_is_client_closed_error(local: LocalServer, kind: str) -> None:
    if kind == "sync":
        sync = Ventryx(local.api_key, base_url=local.base_url)
        sync.close()
        with pytest.raises(ventryx.ClientClosedError, match="closed"):
            sync.events.emit(type="t")
        with pytest.raises(ventryx.ClientClosedError):
            sync.workflows.list()
    else:

        async def main() -> None:
            async with _client(local) as client:
                await client.events.emit(type="t")
            with pytest.raises(ventryx.ClientClosedError, match="make a new client"):
                await client.events.emit(type="t")
            with pytest.raises(ventryx.ClientClosedError):
                async for _ in client.workflows.list():
                    pass

        asyncio.run(main())
    assert isinstance(ventryx.ClientClosedError("x"), RuntimeError)
    assert local.ledger.attempts["POST /v1/events"] == (1 if kind == "async" else 0)


def test_an_unawaited_pager_says_await() -> None:
    client = AsyncVentryx("vx_k", base_url="http://127.0.0.1:9/v1")
    pager = client.workflows.list()
    for name in ("data", "meta", "has_next_page", "next_page", "raw_response"):
        with pytest.raises(AttributeError, match="did you forget await"):
            getattr(pager, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pager.nope  # noqa: B018
    assert not hasattr(pager, "data")
    with pytest.raises(TypeError, match="async for"):
        iter(pager)  # type: ignore[call-overload]

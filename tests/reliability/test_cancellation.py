"""Cancelling a call, mid-request or mid-backoff, returns promptly and leaks nothing.

Cancellation is an async matter, so these tests drive ``AsyncVentryx`` directly (a sync call
cannot be cancelled from the event loop it blocks); the timeout against a silent server runs
through both clients. Time bounds are loose: they catch hangs, they do not measure latency.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import psutil
import pytest

import ventryx
from ventryx import AsyncVentryx
from ventryx.testing import Fault, FaultRule, LocalServer

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("error::ResourceWarning"),
]

POLICY = ventryx.RetryPolicy(initial_delay=0.01, max_delay=0.05)
STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}
CANCEL_AFTER = 0.15
PROMPT = 5.0  # a cancelled call must be back well within this (a hang would take 30 s)

Op = Callable[[AsyncVentryx, dict[str, str]], Awaitable[Any]]
OPERATIONS: dict[str, tuple[str, Op]] = {
    "workflows.list": ("GET /v1/workflows", lambda c, ids: c.workflows.list()),
    "workflows.create": (
        "POST /v1/workflows",
        lambda c, ids: c.workflows.create(name="n", trigger={"event": "e"}, steps=[STEP]),
    ),
    "workflows.retrieve": (
        "GET /v1/workflows/{id}",
        lambda c, ids: c.workflows.retrieve(ids["wf"]),
    ),
    "workflows.update": (
        "PATCH /v1/workflows/{id}",
        lambda c, ids: c.workflows.update(ids["wf"], name="m"),
    ),
    "workflows.delete": ("DELETE /v1/workflows/{id}", lambda c, ids: c.workflows.delete(ids["wf"])),
    "events.emit": ("POST /v1/events", lambda c, ids: c.events.emit(type="t")),
    "events.list": ("GET /v1/events", lambda c, ids: c.events.list()),
    "events.retrieve": ("GET /v1/events/{id}", lambda c, ids: c.events.retrieve(ids["evt"])),
}


def client_sockets(port: int) -> int:
    """This process's TCP connections to ``port`` (the client side; the server's own sockets
    in this process have ``port`` as their local port)."""
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port
    )


async def _ids(client: AsyncVentryx) -> dict[str, str]:
    workflow = await client.workflows.create(name="w", trigger={"event": "e"}, steps=[STEP])
    event = await client.events.emit(type="seed")
    return {"wf": workflow.id, "evt": event.id}


async def _sockets_settle(port: int, want: int) -> int:
    for _ in range(50):
        gc.collect()
        if client_sockets(port) <= want:
            break
        await anyio.sleep(0.02)
    return client_sockets(port)


@pytest.mark.parametrize("name", list(OPERATIONS))
@pytest.mark.parametrize("where", ["mid-request", "mid-backoff"])
async def test_cancelling_returns_promptly_and_the_client_stays_usable(
    server: LocalServer, name: str, where: str
) -> None:
    route, op = OPERATIONS[name]
    baseline = client_sockets(server.port)
    client = AsyncVentryx(server.api_key, base_url=server.base_url, retry_policy=POLICY)
    ids = await _ids(client)
    fault = (
        Fault("delay", delay=30.0)
        if where == "mid-request"
        else Fault("rate_limited", retry_after="30")  # within the 60 s cap: waited out
    )
    server.configure(faults=[FaultRule(route, fault=fault)])
    before = server.ledger.attempts[route]
    started = anyio.current_time()
    with anyio.fail_after(PROMPT):
        with anyio.move_on_after(CANCEL_AFTER) as scope:
            await op(client, ids)
        assert scope.cancelled_caught
    assert anyio.current_time() - started < PROMPT
    assert server.ledger.attempts[route] - before == 1  # no retry started after the cancel

    server.configure(faults=[])
    with anyio.fail_after(PROMPT):
        result = await client.events.emit(type="after-cancel")
    assert result.raw_response is not None
    assert result.raw_response.attempts == 1
    await client.aclose()
    assert await _sockets_settle(server.port, baseline) == baseline


async def _emit(client: AsyncVentryx, n: int) -> None:
    await client.events.emit(type="t", data={"n": n})


async def _list(client: AsyncVentryx) -> None:
    await client.workflows.list()


async def test_cancelling_many_concurrent_calls_at_once(server: LocalServer) -> None:
    baseline = client_sockets(server.port)
    server.configure(faults=[FaultRule("*", fault=Fault("delay", delay=30.0))])
    async with AsyncVentryx(server.api_key, base_url=server.base_url) as client:
        with anyio.fail_after(PROMPT):
            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(_emit, client, n)
                    tg.start_soon(_list, client)
                for _ in range(int(PROMPT / 0.01)):
                    if sum(server.ledger.attempts.values()) >= 40:
                        break
                    await anyio.sleep(0.01)
                assert client_sockets(server.port) >= 40  # all on the wire
                tg.cancel_scope.cancel()
        server.configure(faults=[])
        with anyio.fail_after(PROMPT):
            page = await client.workflows.list()
        assert page.data == []
    assert await _sockets_settle(server.port, baseline) == baseline


async def test_a_server_that_never_answers_times_out(make_client, silent_port: int) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{silent_port}/v1", timeout=0.3, max_retries=1)
    started = anyio.current_time()
    with anyio.fail_after(PROMPT), pytest.raises(ventryx.APITimeoutError) as info:
        await client.events.emit(type="t")
    assert anyio.current_time() - started < PROMPT
    assert "timed out" in str(info.value)


async def test_cancelling_a_call_to_a_silent_server(silent_port: int) -> None:
    base_url = f"http://127.0.0.1:{silent_port}/v1"
    baseline = client_sockets(silent_port)
    async with AsyncVentryx("vx_test", base_url=base_url) as client:  # default 30 s timeout
        with anyio.fail_after(PROMPT), anyio.move_on_after(CANCEL_AFTER) as scope:
            await client.workflows.list()
        assert scope.cancelled_caught
    assert await _sockets_settle(silent_port, baseline) == baseline


def test_sockets_are_counted_at_all(server: LocalServer) -> None:
    """The leak checks above would pass vacuously if psutil saw no connection."""
    import httpx

    with httpx.Client() as http:
        http.get(server.base_url + "/events", headers={"Authorization": f"Bearer {server.api_key}"})
        assert client_sockets(server.port) == 1
    assert client_sockets(server.port) == 0

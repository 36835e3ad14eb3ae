"""TCP connections at concurrency: never more than requests in flight, on every transport.

A pool that closes connections it could keep (httpx's default keeps 20 of 100 alive) makes
the next request open a new one: with 150 in flight, 750 calls opened 715 connections. A raw
socket server here counts the connections it accepts; the pool's cap is 100 connections.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from ventryx import AsyncVentryx
from ventryx._constants import MAX_CONNECTIONS

pytestmark = pytest.mark.anyio
MakeClient = Callable[..., Any]  # the conftest fixture's type

BODY = b'{"data": {"id": "evt_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z"}}'
ANSWER = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class CountingServer:
    """Answers every request with a 201 event over keep-alive; counts accepted connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.accepted = 0
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._open.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    head = buffer[:end].lower()
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if len(buffer) < end + 4 + length:
                        break
                    buffer = buffer[end + 4 + length :]
                    conn.sendall(ANSWER)

    def close(self) -> None:
        self.sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=2)


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def load(client: object, concurrency: int, calls: int) -> None:
    """``concurrency`` workers making ``calls`` calls each, one after the other (a service)."""

    async def worker() -> None:
        for _ in range(calls):
            await client.events.emit(type="t")  # type: ignore[attr-defined]

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


@pytest.mark.parametrize("concurrency", [1, 150])
async def test_steady_load_opens_no_more_connections_than_requests_in_flight(
    make_client: MakeClient, counting: CountingServer, concurrency: int
) -> None:
    client = make_client(base_url=counting.base_url)
    with anyio.fail_after(30):
        await load(client, concurrency, 5)
    assert 1 <= counting.accepted <= min(concurrency, MAX_CONNECTIONS)


async def test_emit_many_opens_no_more_connections_than_its_concurrency(
    make_client: MakeClient, counting: CountingServer
) -> None:
    client = make_client(base_url=counting.base_url)
    events = ({"type": "t", "data": {"i": i}} for i in range(600))
    with anyio.fail_after(30):
        summary = await client.events.emit_many(events, concurrency=120)
    assert summary.delivered == 600
    assert 1 <= counting.accepted <= MAX_CONNECTIONS


@pytest.mark.parametrize("proxy", [None, "HTTPS_PROXY", "all_proxy"])
async def test_auto_picks_aiohttp_only_on_asyncio_without_a_proxy(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    pytest.importorskip("aiohttp")
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    if proxy:  # the aiohttp session would not use it: auto keeps httpx, which does
        monkeypatch.setenv(proxy, "http://proxy.invalid:3128")
    async with AsyncVentryx("sk_test_auto", base_url=BASE_URL, transport="auto") as client:
        expected = "aiohttp" if anyio_backend == "asyncio" and proxy is None else "httpx"
        assert client.transport == expected


def test_auto_outside_an_event_loop_is_httpx() -> None:
    client = AsyncVentryx("sk_test_auto", base_url=BASE_URL, transport="auto")
    assert client.transport == "httpx"


BASE_URL = "http://127.0.0.1:9/v1"

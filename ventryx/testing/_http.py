"""The socket side of the local server: HTTP/1.1 on asyncio protocols, feeding
``VentryxApp.handle``. Requests are parsed by h11, one parser per request (fed what the client
already sent after the previous one); answers, whose headers the app makes, are written here
directly: h11's send side would cost more than the whole app per request.

Keep-alive and pipelining (answered one at a time, in order), Content-Length and chunked
request bodies, ``Expect: 100-continue``, 413 before an oversized body arrives, 400 (431 for an
oversized head) on a malformed request, and the transport side of faults: a reset is
SO_LINGER(1, 0) then close, a truncation sends half the declared body then closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any

import h11

from ventryx.testing._app import VentryxApp
from ventryx.testing._messages import Request, Response, request_id

logger = logging.getLogger("ventryx.testing")
MAX_HEAD_BYTES = 65_536
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# After answering a request whose body we did not read, keep draining it this long so the
# client gets to read the answer instead of a reset caused by unread data.
_DRAIN_SECONDS = 2.0


def _parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)


def _head_problem(event: h11.Request, headers: dict[str, str]) -> str | None:
    """What h11 accepts but this server refuses, as the 400 message."""
    if event.http_version not in (b"1.0", b"1.1"):
        return "unsupported HTTP version"
    if not event.target.startswith(b"/"):
        return "malformed request line"
    if "transfer-encoding" in headers and "content-length" in headers:
        return "unsupported transfer-encoding"
    return None


def _head_of(response: Response, *, close: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _keep_alive(event: h11.Request, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if event.http_version == b"1.0":
        return "keep-alive" in connection
    return "close" not in connection


class HTTPConnection(asyncio.Protocol):
    """One client connection; requests on it are answered one at a time, in order."""

    def __init__(self, app: VentryxApp, server: HTTPServer) -> None:
        self._app = app
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._h11 = _parser()
        self._busy = False  # a request is being answered: the next one waits in h11's buffer
        self._closing = False
        self._draining = False
        self._client: str | None = None
        self._eof = False
        # the request whose body is arriving
        self._head: h11.Request | None = None
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._continued = False  # "100 Continue" sent

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else None

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        self._feed(data)
        if not self._busy:
            self._process()

    def eof_received(self) -> bool | None:
        self._eof = True
        if not self._busy:
            self.close()
        return True  # keep our write side open until a pending answer is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.connections.discard(self)

    # -- control -------------------------------------------------------------------------
    def close(self) -> None:
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def reset(self) -> None:
        """Close so the peer sees ECONNRESET, not an orderly end of stream."""
        self._closing = True
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    # -- parsing -------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._h11.their_state is h11.IDLE and not self._h11.trailing_data[0]:
            data = data.lstrip(b"\r\n")  # tolerate blank lines between requests
        if data:
            self._h11.receive_data(data)

    def _process(self) -> None:
        limit = self._app.config.max_body_bytes
        while not self._busy and not self._closing:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(431 if exc.error_status_hint == 431 else 400, str(exc))
                return
            if event is h11.NEED_DATA:
                waiting = self._head is not None and self._h11.they_are_waiting_for_100_continue
                if waiting and not self._continued:
                    self._continued = True
                    self._write(_CONTINUE)
                return
            if isinstance(event, h11.Request):
                self._head, self._chunks, self._size, self._continued = event, [], 0, False
                self._headers = {
                    k.decode("ascii").lower(): v.decode("latin-1")
                    for k, v in event.headers.raw_items()
                }
                problem = _head_problem(event, self._headers)
                if problem is not None:
                    self._fail(400, problem)
                    return
                length = self._headers.get("content-length")
                if length is not None and int(length) > limit:
                    self._dispatch(too_large=True)
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > limit:
                    self._dispatch(too_large=True)
                else:
                    self._chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch(too_large=False)
            else:  # ConnectionClosed, or PAUSED (never while not busy)
                return

    def _dispatch(self, *, too_large: bool) -> None:
        head = self._head
        assert head is not None
        path, _, query = head.target.decode("latin-1").partition("?")
        body = b"".join(self._chunks)
        method = head.method.decode("ascii")
        request = Request(method, path, query, self._headers, body, too_large, self._client)
        keep_alive = not too_large and _keep_alive(head, self._headers)
        self._head, self._chunks = None, []
        self._busy = True
        self._server.spawn(self._answer(request, keep_alive))

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self._app.handle(request)
        except Exception:  # a bug in the app must not kill the connection silently
            logger.exception(
                "local server: error while handling %s %s", request.method, request.path
            )
            self._fail(500, "internal error in the local server", "internal_error")
            return
        if self._closing:
            return
        if response.action == "reset":
            self.reset()
            return
        head = _head_of(response, close=not keep_alive)
        if response.action == "truncate":
            self._write(head + response.body[: len(response.body) // 2])
            self.close()
            return
        self._write(head + response.body)
        if not keep_alive:
            if request.body_too_large:
                self._drain_then_close()
            else:
                self.close()
            return
        self._next_cycle()
        self._busy = False
        self._process()
        if self._eof and not self._busy:
            self.close()

    def _next_cycle(self) -> None:
        """A fresh parser for the next request, fed what the client already sent."""
        pending, _ = self._h11.trailing_data
        self._h11 = _parser()
        self._feed(bytes(pending))

    # -- writing -------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _fail(self, status: int, message: str, code: str = "invalid_request") -> None:
        """Answer ``status`` with a JSON error, then stop reading this connection."""
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        response = Response(status, [("Content-Type", "application/json"), request_id()], body)
        self._write(_head_of(response, close=True) + body)
        self._drain_then_close()

    def _drain_then_close(self) -> None:
        """Half-close, discard what the client still sends, then close after a while."""
        self._draining = True
        self._busy = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(_DRAIN_SECONDS, self.close)


class HTTPServer:
    """Serves one app on one listening socket; ``close`` ends every connection and task."""

    def __init__(self, app: VentryxApp) -> None:
        self.app = app
        self.connections: set[HTTPConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HTTPConnection(self.app, self), host, port, reuse_address=True, backlog=1024
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        # let the transports run their connection_lost callbacks
        await asyncio.sleep(0)

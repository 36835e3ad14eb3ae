"""A small HTTP/1.1 server on asyncio protocols that feeds ``VentryxApp.handle``.

Keep-alive, Content-Length and chunked request bodies, ``Expect: 100-continue``, 400 on a
malformed head, and the transport side of faults: a reset is SO_LINGER(1, 0) then close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import struct
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any

from ventryx.testing._app import Request, Response, VentryxApp

logger = logging.getLogger("ventryx.testing")
MAX_HEAD_BYTES = 65_536
_SINGLE = frozenset({"content-length", "transfer-encoding", "host"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REASONS = {s.value: s.phrase for s in HTTPStatus}
# After answering a request whose body we did not read, keep draining it this long so the
# client gets to read the answer instead of a reset caused by unread data.
_DRAIN_SECONDS = 2.0


class _BadRequest(Exception):
    pass


def _is_token(value: bytes) -> bool:
    return _TOKEN.fullmatch(value) is not None


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise _BadRequest("malformed request line")
    method, target, version = parts
    if not _is_token(method) or not target.startswith(b"/"):
        raise _BadRequest("malformed request line")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _BadRequest("unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _is_token(name):
            raise _BadRequest("malformed header line")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers and key in _SINGLE and headers[key] != text:
            raise _BadRequest(f"conflicting {key} headers")
        headers[key] = text
    return method.decode("ascii"), target.decode("latin-1"), version.decode("ascii"), headers


def _parse_chunked(buf: bytearray, start: int, limit: int) -> tuple[bytes, int] | int | None:
    """(body, end) when complete; None when more data is needed; -1 when over ``limit``."""
    pos = start
    chunks: list[bytes] = []
    size_total = 0
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest("malformed chunk size") from None
        if size < 0:
            raise _BadRequest("malformed chunk size")
        size_total += size
        if size_total > limit:
            return -1
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end >= 0 and trailer_end != pos:  # skip trailer fields
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(chunks), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None
        chunks.append(bytes(buf[pos : pos + size]))
        if not buf.startswith(b"\r\n", pos + size):
            raise _BadRequest("malformed chunk")
        pos += size + 2


def _serialize(response: Response, close: bool) -> tuple[bytes, bytes]:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head, response.body


class HTTPConnection(asyncio.Protocol):
    """One client connection; requests on it are answered one at a time, in order."""

    def __init__(self, app: VentryxApp, server: HTTPServer) -> None:
        self._app = app
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._busy = False
        self._closing = False
        self._draining = False
        self._client: str | None = None
        self._eof = False

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
        self._buf += data
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
    def _fail(self, status: int, message: str, code: str = "invalid_request") -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("X-Request-Id", "req_" + os.urandom(8).hex()),
        ]
        response = Response(status, headers, body)
        self._write(response, close=True)
        self._drain_then_close()

    def _process(self) -> None:
        while not self._busy and not self._closing:
            buf = self._buf
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    self._fail(431, "request head too large")
                return
            while buf.startswith(b"\r\n"):  # tolerate blank lines between requests
                del buf[:2]
                head_end -= 2
            try:
                method, target, version, headers = _parse_head(bytes(buf[:head_end]))
            except _BadRequest as exc:
                self._fail(400, str(exc))
                return
            except UnicodeDecodeError:
                self._fail(400, "malformed request head")
                return
            body_start = head_end + 4
            limit = self._app.config.max_body_bytes
            too_large = False
            body = b""
            end = body_start
            if "transfer-encoding" in headers:
                if headers["transfer-encoding"].lower() != "chunked" or "content-length" in headers:
                    self._fail(400, "unsupported transfer-encoding")
                    return
                self._maybe_continue(headers)
                try:
                    parsed = _parse_chunked(buf, body_start, limit)
                except _BadRequest as exc:
                    self._fail(400, str(exc))
                    return
                if parsed is None:
                    return
                if parsed == -1:
                    too_large = True
                else:
                    assert not isinstance(parsed, int)
                    body, end = parsed
            elif "content-length" in headers:
                text = headers["content-length"]
                if not (text.isascii() and text.isdigit()):
                    self._fail(400, "malformed content-length")
                    return
                length = int(text)
                if length > limit:
                    too_large = True
                else:
                    if len(buf) < body_start + length:
                        self._maybe_continue(headers)
                        return
                    end = body_start + length
                    body = bytes(buf[body_start:end])
            connection = headers.get("connection", "").lower()
            keep_alive = (
                "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
            )
            path, _, query = target.partition("?")
            request = Request(method, path, query, headers, body, too_large, self._client)
            if too_large:
                keep_alive = False
                self._buf = bytearray()
            else:
                del buf[:end]
            self._busy = True
            self._server.spawn(self._answer(request, keep_alive))

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            headers.pop("expect")
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

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
        if response.action == "truncate":
            head, body = _serialize(response, close=True)
            assert self._transport is not None
            self._transport.write(head + body[: len(body) // 2])
            self.close()
            return
        self._write(response, close=not keep_alive)
        if not keep_alive:
            if request.body_too_large:
                self._drain_then_close()
            else:
                self.close()
            return
        self._busy = False
        if self._buf:
            self._process()
        if self._eof and not self._busy:
            self.close()

    def _write(self, response: Response, *, close: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        head, body = _serialize(response, close)
        self._transport.write(head + body if len(body) < 65_536 else head)
        if len(body) >= 65_536:
            self._transport.write(body)

    def _drain_then_close(self) -> None:
        """Half-close, discard what the client still sends, then close after a while."""
        self._draining = True
        self._busy = True
        self._buf = bytearray()
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

"""The app as ASGI 3, for in-process tests over ``httpx.ASGITransport``: no socket, no thread.

A fault that a socket server shows as a broken connection raises instead, as an exception that
is what httpx raises for the real thing (``httpx.ReadError`` for a reset,
``httpx.RemoteProtocolError`` for a cut body) and also a ``SimulatedConnectionError``. So an
SDK over ``ASGITransport`` sees an ``httpx.TransportError`` and maps and retries it as it would
over a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from ventryx.testing._messages import Request, Response

__all__ = ["ASGIReceive", "ASGIScope", "ASGISend", "SimulatedConnectionError", "serve_asgi"]

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]


class SimulatedConnectionError(httpx.TransportError, ConnectionError):
    """Raised by the ASGI adapter where a socket server would reset or cut the connection."""


class _SimulatedReset(SimulatedConnectionError, httpx.ReadError):
    pass


class _SimulatedTruncation(SimulatedConnectionError, httpx.RemoteProtocolError):
    pass


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_request(scope: ASGIScope, receive: ASGIReceive, limit: int) -> Request | None:
    """The request of an ``http`` scope (None when the client disconnected first)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size <= limit:  # past the limit, drain without keeping (the sender may need it)
            chunks.append(chunk)
        more = bool(message.get("more_body", False))
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else str(scope["path"])
    client = scope.get("client")
    return Request(
        method=str(scope["method"]).upper(),
        path=path.partition("?")[0],
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=b"".join(chunks),
        body_too_large=size > limit,
        client=str(client[0]) if client else None,
    )


async def serve_asgi(
    handle: Callable[[Request], Awaitable[Response]],
    max_body_bytes: int,
    scope: ASGIScope,
    receive: ASGIReceive,
    send: ASGISend,
) -> None:
    """One ASGI call answered by ``handle``."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
    request = await _read_request(scope, receive, max_body_bytes)
    if request is None:
        return
    response = await handle(request)
    if response.action == "reset":
        raise _SimulatedReset("injected fault: connection reset by the local server")
    if response.action == "truncate":
        raise _SimulatedTruncation("injected fault: response body truncated")
    headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})

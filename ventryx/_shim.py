"""The transport shims: the only code in the SDK that does I/O or sleeps.

Everything above a shim is written once, as ``async def``. ``AsyncShim`` really suspends;
``BlockingShim`` has ``async def`` methods that block and return without ever suspending, which
is what lets the sync facade drive the same coroutines with a single ``send(None)``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import weakref
from collections.abc import AsyncIterable, Callable
from typing import Generic, Protocol, TypeVar, cast

import httpx

from ventryx._deadline import (
    BodyCollector,
    DeadlineExceeded,
    clamp_timeouts,
    current_deadline,
    remaining,
    set_content,
)

__all__ = ["AsyncShim", "BlockingShim", "Shim"]


def install_deadline_backend(client: httpx.Client) -> bool:
    """Wrap the network backend of every httpcore pool under ``client``; True if all were.

    Works for ``httpx.HTTPTransport`` (the default, also behind ``proxy=``/``mounts=``); a
    custom transport is left alone (its reads are only bounded by the clamped timeouts).
    """
    from ventryx._sockets import wrap_pools  # noqa: PLC0415 - httpcore loads anyio

    return wrap_pools(client)


class Shim(Protocol):
    """What the request pipeline needs from a transport.

    The contract of ``send`` (every shim, including ones over other HTTP libraries):

    - ``deadline`` is absolute, in ``time.monotonic()`` seconds (``None``: none). When it
      passes at any point of the attempt (connecting, waiting for a pooled connection,
      writing, headers or body trickling in) ``send`` raises ``httpx.TimeoutException`` (a
      subclass such as ``DeadlineExceeded``) or ``ventryx.APITimeoutError``, promptly.
    - The answer is fully read before returning (``response.content`` is the decoded body,
      the response closed). More than ``max_bytes`` bytes, counted after decoding (gzip,
      deflate) and also on the wire, raise ``ventryx.ResponseTooLargeError`` while reading:
      memory never holds much more than ``max_bytes`` for one answer. A ``Content-Length``
      over the cap raises it before the body is read.
    - A body that cannot be decoded (invalid gzip/deflate) raises ``httpx.DecodingError``;
      other transport failures raise ``httpx.TransportError`` (or an ``APIConnectionError``).
      Redirects are never followed. The pipeline maps all of these to the SDK's errors.
    """

    @property
    def headers(self) -> httpx.Headers:
        """The default headers every request starts from (an httpx client's own)."""
        ...

    @property
    def params(self) -> httpx.QueryParams:
        """The default query parameters every request gets."""
        ...

    async def send(
        self, request: httpx.Request, *, deadline: float | None, max_bytes: int
    ) -> httpx.Response: ...

    async def sleep(self, seconds: float) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


class _HttpxShim(Generic[_Client]):
    """A shim's httpx client (``owned``: made by ``factory``, closed by the shim) and its own
    default headers and query parameters, read at each request."""

    client: _Client
    owned: bool
    _factory: Callable[[], _Client] | None

    def __init__(
        self, client: _Client, *, owned: bool, factory: Callable[[], _Client] | None = None
    ) -> None:
        self.client = client
        self.owned = owned
        self._factory = factory
        self._started()

    def _started(self) -> None:
        """What a kind of shim sets up once its client is set."""

    @property
    def headers(self) -> httpx.Headers:
        return self.client.headers

    @property
    def params(self) -> httpx.QueryParams:
        return self.client.params


class AsyncShim(_HttpxShim[httpx.AsyncClient]):
    """``httpx.AsyncClient`` and ``anyio.sleep``: works on asyncio and trio.

    A pool's connections belong to the event loop that opened them. When the shim is next
    used from another loop (a second ``asyncio.run()``, asyncio then trio), an owned client
    (made by ``factory``) is replaced by a fresh one; an injected client cannot be, so that
    raises ``ConfigurationError`` naming the fix.
    """

    def _started(self) -> None:
        self._loop: object = None

    async def _check_loop(self) -> None:
        loop = _current_loop()
        if self._loop is None or loop is None:
            self._loop = loop
            return
        if loop is self._loop:
            return
        if not self.owned or self._factory is None:
            from ventryx._errors import ConfigurationError  # noqa: PLC0415

            raise ConfigurationError(
                "http_client: the injected httpx.AsyncClient was first used on another event "
                "loop, and its connections cannot move to this one. Make the AsyncVentryx "
                "(and its http_client) inside the event loop that uses it, e.g. within each "
                "asyncio.run() or trio.run(), or leave http_client out to get a pool per loop"
            )
        stale, self.client = self.client, self._factory()
        self._loop = loop
        _abandon(stale)

    async def send(
        self, request: httpx.Request, *, deadline: float | None, max_bytes: int
    ) -> httpx.Response:
        import anyio  # noqa: PLC0415 - loaded with the first request, not `import ventryx`

        if self._loop is not _current_loop():
            await self._check_loop()
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise DeadlineExceeded("deadline passed before sending", request=request)
        try:
            with anyio.fail_after(left):
                response = await self.client.send(request, stream=True)
                try:
                    body = BodyCollector(response, max_bytes)
                    if response.is_stream_consumed:  # a transport that returned it read
                        return body.whole(response.content)
                    content = await _read(response, body)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise DeadlineExceeded("deadline passed", request=request) from None
        set_content(response, content)
        return response

    async def sleep(self, seconds: float) -> None:
        import anyio  # noqa: PLC0415 - only retries sleep; keeps `import ventryx` light

        await anyio.sleep(seconds)

    async def aclose(self) -> None:
        if self.owned:
            if self._loop is not None and self._loop is not _current_loop():
                await self._check_loop()  # closing on another loop: the old pool is dropped
            await self.client.aclose()

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed


async def _read(response: httpx.Response, body: BodyCollector) -> bytes:
    """The raw body through ``body``; on any failure the stream's generators are run out.

    httpx reads through a chain of async generators. Left suspended mid-way (too large, bad
    gzip), they are garbage-collected unfinished, which trio reports as a ResourceWarning; so
    the connection is closed first, and the chain then ends at once with an error.
    """
    stream = cast("AsyncIterable[bytes]", response.stream)
    chunks = stream.__aiter__()
    try:
        async for chunk in chunks:
            body.feed(chunk)
    except Exception:
        await response.aclose()
        with contextlib.suppress(Exception):
            async for _ in chunks:
                pass
        raise
    return body.finish()


def _current_loop() -> object:
    """The running event loop (asyncio) or run (trio), as an identity; None if unknown."""
    import sniffio  # noqa: PLC0415 - anyio's dependency

    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None
    if library == "asyncio":
        import asyncio  # noqa: PLC0415

        return asyncio.get_running_loop()
    if library == "trio":
        import trio  # noqa: PLC0415

        return trio.lowlevel.current_trio_token()
    return None


def _abandon(client: httpx.AsyncClient) -> None:
    """Drop a pool whose loop is gone, closing its sockets without that loop.

    Its ``aclose()`` would need the old loop. Each pooled socket is closed directly instead:
    on asyncio the transport is detached from its socket first (it would otherwise warn, and
    close the socket number again, when collected); on trio the socket object is closed.
    """
    transports: list[object] = [getattr(client, "_transport", None)]
    mounts: dict[object, object] = getattr(client, "_mounts", None) or {}
    transports.extend(mounts.values())
    # A transport made of several (a sharded pool) holds them in ``_shards``.
    for transport in list(transports):
        transports.extend(getattr(transport, "_shards", None) or [])
    for transport in transports:
        pool: object = getattr(transport, "_pool", None)
        for connection in list(getattr(pool, "_connections", None) or []):
            with contextlib.suppress(Exception):
                _close_socket_of(connection)
    _INHERITED_ASYNC_CLIENTS.append(client)
    del _INHERITED_ASYNC_CLIENTS[:-8]


def _close_socket_of(connection: object) -> None:
    stream: object = getattr(getattr(connection, "_connection", None), "_network_stream", None)
    inner: object = getattr(stream, "_stream", None)
    while hasattr(inner, "transport_stream"):  # TLS over the socket stream
        inner = getattr(inner, "transport_stream", None)
    transport: object = getattr(inner, "_transport", None)
    sock: object = getattr(transport, "_sock", None)
    if transport is not None and isinstance(sock, socket.socket):
        setattr(transport, "_sock", None)  # noqa: B010 - asyncio's transport, loop closed
        sock.close()
        return
    info: Callable[[str], object] | None = getattr(stream, "get_extra_info", None)
    raw = info("socket") if info is not None else None
    if isinstance(raw, socket.socket):
        raw.close()


_INHERITED_ASYNC_CLIENTS: list[httpx.AsyncClient] = []


class BlockingShim(_HttpxShim[httpx.Client]):
    """``httpx.Client`` and ``time.sleep`` behind ``async def``: its coroutines never suspend.

    An owned client (made by ``factory``) is shared safely by threads (``httpx.Client`` is),
    is replaced by a fresh one in the child after ``os.fork()`` (the parent's pooled sockets
    must not be reused there), and is closed when the shim is garbage-collected unclosed.
    """

    def _started(self) -> None:
        client = self.client
        self._finalizer: weakref.finalize[[], BlockingShim] | None = None
        if self.owned:
            self._finalizer = weakref.finalize(self, client.close)
            _OWNED_BLOCKING_SHIMS.add(self)
        # Every socket wait of the client clamped to the attempt's deadline (injected clients
        # too, when their transport is httpx's own; see ventryx/_deadline.py).
        self.deadline_on_sockets = install_deadline_backend(client)

    async def send(
        self, request: httpx.Request, *, deadline: float | None, max_bytes: int
    ) -> httpx.Response:
        if deadline is not None:
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise DeadlineExceeded("deadline passed before sending", request=request)
            clamp_timeouts(request, deadline)
        token = current_deadline.set(deadline)
        try:
            response = self.client.send(request, stream=True)
            try:
                body = BodyCollector(response, max_bytes)
                if response.is_stream_consumed:  # a transport that returned it read
                    return body.whole(response.content)
                for chunk in response.iter_raw():
                    body.feed(chunk)
                    left = remaining(deadline)
                    if left is not None and left <= 0:
                        raise DeadlineExceeded("deadline passed", request=request)
                content = body.finish()
            finally:
                response.close()
        finally:
            current_deadline.reset(token)
        set_content(response, content)
        return response

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # noqa: ASYNC251 - this is the blocking shim: blocking is its job

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the client once; a no-op afterwards

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed

    def after_fork_in_child(self) -> None:
        if self.client.is_closed or self._finalizer is None or not self._finalizer.alive:
            return
        # The parent's client is abandoned, not closed: its pool lock may have been held by
        # another thread at the fork, and its sockets are the parent's connections. It is kept
        # referenced so that its sockets are never garbage-collected (a ResourceWarning each).
        self._finalizer.detach()
        _INHERITED_CLIENTS.append(self.client)
        fresh = self._factory() if self._factory is not None else _copy_client(self.client)
        install_deadline_backend(fresh)
        self.client = fresh
        self._finalizer = weakref.finalize(self, fresh.close)


def _copy_client(client: httpx.Client) -> httpx.Client:
    return httpx.Client(
        timeout=client.timeout,
        follow_redirects=client.follow_redirects,
        headers=client.headers,
        event_hooks=client.event_hooks,
    )


_OWNED_BLOCKING_SHIMS: weakref.WeakSet[BlockingShim] = weakref.WeakSet()
_INHERITED_CLIENTS: list[httpx.Client] = []


def _renew_owned_clients_in_child() -> None:
    for shim in list(_OWNED_BLOCKING_SHIMS):
        shim.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_renew_owned_clients_in_child)

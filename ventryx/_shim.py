"""The transport shims: the only code in the SDK that does I/O or sleeps.

Everything above a shim is written once, as ``async def``. ``AsyncShim`` really suspends;
``BlockingShim`` has ``async def`` methods that block and return without ever suspending, which
is what lets the sync facade drive the same coroutines with a single ``send(None)``.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import httpx

__all__ = ["AsyncShim", "BlockingShim", "Shim"]


class Shim(Protocol):
    """What the request pipeline needs from a transport."""

    @property
    def headers(self) -> httpx.Headers:
        """The default headers every request starts from (an httpx client's own)."""
        ...

    @property
    def params(self) -> httpx.QueryParams:
        """The default query parameters every request gets."""
        ...

    async def send(self, request: httpx.Request) -> httpx.Response: ...

    async def sleep(self, seconds: float) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


class _HttpxDefaults(Generic[_Client]):
    """The httpx client's own default headers and query parameters, read at each request."""

    client: _Client

    @property
    def headers(self) -> httpx.Headers:
        return self.client.headers

    @property
    def params(self) -> httpx.QueryParams:
        return self.client.params


class AsyncShim(_HttpxDefaults[httpx.AsyncClient]):
    """``httpx.AsyncClient`` and ``anyio.sleep``: works on asyncio and trio."""

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        self.client = client
        self.owned = owned

    async def send(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request)

    async def sleep(self, seconds: float) -> None:
        import anyio  # noqa: PLC0415 - only retries sleep; keeps `import ventryx` light

        await anyio.sleep(seconds)

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed


class BlockingShim(_HttpxDefaults[httpx.Client]):
    """``httpx.Client`` and ``time.sleep`` behind ``async def``: its coroutines never suspend.

    An owned client (made by ``factory``) is shared safely by threads (``httpx.Client`` is),
    is replaced by a fresh one in the child after ``os.fork()`` (the parent's pooled sockets
    must not be reused there), and is closed when the shim is garbage-collected unclosed.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        owned: bool,
        factory: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.client = client
        self.owned = owned
        self._factory = factory
        self._finalizer: weakref.finalize[[], BlockingShim] | None = None
        if owned:
            self._finalizer = weakref.finalize(self, client.close)
            _OWNED_BLOCKING_SHIMS.add(self)

    async def send(self, request: httpx.Request) -> httpx.Response:
        return self.client.send(request)

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

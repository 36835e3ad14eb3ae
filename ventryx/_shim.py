"""The transport shims: the only code in the SDK that does I/O or sleeps.

Everything above a shim is written once, as ``async def``. ``AsyncShim`` really suspends;
``BlockingShim`` has ``async def`` methods that block and return without ever suspending, which
is what lets the sync facade drive the same coroutines with a single ``send(None)``.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio
import httpx

__all__ = ["AsyncShim", "BlockingShim", "Shim"]


class Shim(Protocol):
    """What the request pipeline needs from a transport."""

    def build_request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        params: httpx.QueryParams | None,
        headers: dict[str, str],
        timeout: httpx.Timeout | None,
    ) -> httpx.Request: ...

    async def send(self, request: httpx.Request) -> httpx.Response: ...

    async def sleep(self, seconds: float) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...


class AsyncShim:
    """``httpx.AsyncClient`` and ``anyio.sleep``: works on asyncio and trio."""

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        self.client = client
        self.owned = owned

    def build_request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        params: httpx.QueryParams | None,
        headers: dict[str, str],
        timeout: httpx.Timeout | None,
    ) -> httpx.Request:
        return self.client.build_request(
            method, url, content=content, params=params, headers=headers, timeout=timeout
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def aclose(self) -> None:
        if self.owned:
            await self.client.aclose()

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed


class BlockingShim:
    """``httpx.Client`` and ``time.sleep`` behind ``async def``: its coroutines never suspend."""

    def __init__(self, client: httpx.Client, *, owned: bool) -> None:
        self.client = client
        self.owned = owned

    def build_request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        params: httpx.QueryParams | None,
        headers: dict[str, str],
        timeout: httpx.Timeout | None,
    ) -> httpx.Request:
        return self.client.build_request(
            method, url, content=content, params=params, headers=headers, timeout=timeout
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        return self.client.send(request)

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # noqa: ASYNC251 - this is the blocking shim: blocking is its job

    async def aclose(self) -> None:
        if self.owned:
            self.client.close()

    def close(self) -> None:
        if self.owned:
            self.client.close()

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed

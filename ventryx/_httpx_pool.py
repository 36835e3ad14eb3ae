"""The async httpx transport of a client that owns its pool: many one-connection pools.

httpcore's pool (1.0.9) gets slower as concurrency rises: every queued request is matched
against every pooled connection on every change, and on asyncio each idle connection costs a
``getpeername()`` per pass. At 64 requests in flight that scan was half the client's time, at
256 nine tenths (issue 19). So the pool is split into shards of one connection each, made as
needed; a request goes to an idle shard (the most recently used first, whose connection is
warm), and only when every shard is busy to the least loaded one. Each httpcore pool then scans
one connection. A shard's connection is never closed for being one too many (its keep-alive
limit is its size), so no request opens a connection another one just dropped, and there are
never more connections than requests in flight: an idle shard is always reused before a new
one is made.

Measured against ``httpx.AsyncClient`` with one pool of the same size (benchmarks/): equal at
concurrency 1, 2-5x the requests/s at 16-256 (see the README's Performance section).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx

__all__ = ["ShardedTransport"]


class ShardedTransport(httpx.AsyncBaseTransport):
    """Up to ``shards`` one-connection ``httpx.AsyncHTTPTransport`` pools, least loaded first."""

    def __init__(
        self, *, shards: int, keepalive_expiry: float | None, verify: ssl.SSLContext
    ) -> None:
        self._max = max(shards, 1)
        self._limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=keepalive_expiry
        )
        self._verify = verify
        self._shards: list[httpx.AsyncHTTPTransport] = []
        self._load: list[int] = []
        self._idle: list[int] = []  # shards with nothing in flight, most recently freed last

    @property
    def shards(self) -> list[httpx.AsyncHTTPTransport]:
        """The shards made so far (each an httpx transport of one connection)."""
        return list(self._shards)

    def _pick(self) -> int:
        if self._idle:
            return self._idle.pop()
        if len(self._shards) < self._max:
            self._shards.append(httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits))
            self._load.append(0)
            return len(self._shards) - 1
        load = self._load
        return min(range(len(load)), key=load.__getitem__)

    def _release(self, index: int) -> None:
        if index >= len(self._load):  # answered after aclose()
            return
        self._load[index] -= 1
        if self._load[index] == 0:
            self._idle.append(index)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self._load[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._release(index)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's
        response.stream = _Releasing(response.stream, self, index)
        return response

    async def aclose(self) -> None:
        shards, self._shards = self._shards, []
        self._load, self._idle = [], []
        for shard in shards:
            await shard.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its shard back when it is closed (read or not)."""

    __slots__ = ("_index", "_owner", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, owner: ShardedTransport, index: int) -> None:
        self._stream = stream
        self._owner: ShardedTransport | None = owner
        self._index = index

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # the shard's own stream: no generator in between

    async def aclose(self) -> None:
        owner, self._owner = self._owner, None
        try:
            await self._stream.aclose()
        finally:
            if owner is not None:
                owner._release(self._index)  # pyright: ignore[reportPrivateUsage]

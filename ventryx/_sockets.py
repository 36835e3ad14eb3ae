"""The blocking client's sockets with every wait clamped to the attempt's deadline.

See ``ventryx/_deadline.py``: ``BlockingShim`` sets ``current_deadline`` around a send, and the
network backend here lowers each read, write, connect and TLS handshake timeout to the time
left, so a peer trickling bytes cannot outlast the deadline. Loaded with the first sync client
(httpcore is not needed by ``import ventryx``).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from ventryx._deadline import MIN_WAIT, current_deadline

__all__ = ["DeadlineBackend", "wrap_pools"]


def _left_or_raise(timeout: float | None, exc: type[Exception]) -> float | None:
    deadline = current_deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("deadline passed")
    return max(left, MIN_WAIT) if timeout is None else max(min(timeout, left), MIN_WAIT)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left_or_raise(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left_or_raise(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left_or_raise(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking backend with every socket wait clamped to ``current_deadline``.

    Without a deadline set (another user of the same ``httpx.Client``) it behaves exactly
    like the backend it wraps.
    """

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left_or_raise(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, wait, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left_or_raise(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def wrap_pools(client: httpx.Client) -> bool:
    """Wrap the network backend of every httpcore pool under ``client``; True if all were."""
    transports: list[object] = [getattr(client, "_transport", None)]
    mounts: dict[object, object] = getattr(client, "_mounts", {}) or {}
    transports.extend(mounts.values())
    complete = True
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, DeadlineBackend):
            continue
        if not isinstance(backend, httpcore.NetworkBackend):
            complete = False
            continue
        pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]  # pyright: ignore[reportOptionalMemberAccess, reportAttributeAccessIssue]
    return complete

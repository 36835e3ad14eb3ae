"""The transports the SDK makes: its own httpx clients and the shims for ``transport=``.

Below the client and the bulk layer alike: ``AsyncVentryx``, ``emit_many`` and the emitters
all build their pools here, so none of them imports the layer above it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Literal, TypeAlias

import httpx

from ventryx import _constants as C
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._httpx_pool import ShardedTransport
from ventryx._options import ClientOptions
from ventryx._shim import AsyncShim, Shim
from ventryx._ssl import ssl_context

__all__ = [
    "TRANSPORTS",
    "Transport",
    "make_async_http_client",
    "make_async_shim",
    "make_sync_http_client",
    "transport_of",
]

Transport: TypeAlias = Literal["httpx", "aiohttp", "auto"]
TRANSPORTS: tuple[Transport, ...] = ("httpx", "aiohttp", "auto")


def make_async_http_client(options: ClientOptions) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` a client owns when none is injected.

    Its pool is sharded (``ShardedTransport``), and it shares the SDK's one SSL context, so
    creating it costs microseconds, not the 20 ms of a fresh context.
    """
    verify = ssl_context()
    return httpx.AsyncClient(
        timeout=options.timeout,
        follow_redirects=False,
        verify=verify,  # for the proxy transports httpx makes from the environment
        transport=ShardedTransport(
            shards=C.MAX_CONNECTIONS, keepalive_expiry=C.KEEPALIVE_EXPIRY, verify=verify
        ),
    )


def make_sync_http_client(options: ClientOptions) -> httpx.Client:
    """The ``httpx.Client`` the sync client owns when none is injected."""
    return httpx.Client(
        timeout=options.timeout,
        limits=C.DEFAULT_LIMITS,
        follow_redirects=False,
        verify=ssl_context(),
    )


_AIOHTTP_INSTALLED: list[bool] = []


def _proxied() -> bool:
    """Whether the environment names an HTTP proxy (httpx uses it; the aiohttp session not)."""
    return any(
        value and name.lower() in ("http_proxy", "https_proxy", "all_proxy")
        for name, value in os.environ.items()
    )


def _auto_picks_aiohttp() -> bool:
    """``transport="auto"``: aiohttp when it is installed, this thread runs asyncio, and no
    proxy is set in the environment."""
    asyncio = sys.modules.get("asyncio")  # not loaded: no loop can be running
    if asyncio is None or _proxied():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop, or trio's
        return False
    if not _AIOHTTP_INSTALLED:  # looked up once, without importing it
        _AIOHTTP_INSTALLED.append(importlib.util.find_spec("aiohttp") is not None)
    return _AIOHTTP_INSTALLED[0]


def make_async_shim(
    transport: object, options: ClientOptions, http_client: httpx.AsyncClient | None = None
) -> Shim:
    """The shim of ``transport`` ("httpx", "aiohttp" or "auto") for a client's requests."""
    if transport not in TRANSPORTS:
        raise InvalidInputError("transport", "must be 'httpx', 'aiohttp' or 'auto'")
    if http_client is not None:
        if transport == "aiohttp":
            raise ConfigurationError(
                "transport='aiohttp' sends through its own aiohttp session: it cannot use an "
                "injected http_client (leave transport unset to use the httpx client given)"
            )
        return AsyncShim(http_client, owned=False)
    if transport == "aiohttp" or (transport == "auto" and _auto_picks_aiohttp()):
        try:
            from ventryx._shim_aiohttp import AiohttpShim  # noqa: PLC0415 - loads aiohttp
        except ModuleNotFoundError as exc:
            if exc.name != "aiohttp":
                raise
            raise ConfigurationError(
                "transport='aiohttp' needs the aiohttp extra: pip install 'ventryx[aiohttp]'"
            ) from None
        return AiohttpShim(base_url=options.base_url, limits=C.DEFAULT_LIMITS)
    return AsyncShim(
        make_async_http_client(options),
        owned=True,
        factory=lambda: make_async_http_client(options),  # a fresh pool on another loop
    )


def transport_of(shim: Shim) -> Literal["httpx", "aiohttp"]:
    """Which transport a client's requests go through."""
    return "httpx" if isinstance(shim, AsyncShim) else "aiohttp"

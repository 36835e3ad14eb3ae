"""The optional fast transport for bulk emission: httpx over aiohttp (asyncio only).

httpx's own pool slows down as concurrency rises (DESIGN.md section 3); ``httpx-aiohttp``
keeps the httpx API, so the whole request pipeline is reused unchanged. Imported only when
asked for, so ``import ventryx`` never loads aiohttp.
"""

from __future__ import annotations

import asyncio

import httpx

from ventryx._errors import ConfigurationError
from ventryx._options import ClientOptions
from ventryx._pipeline import Pipeline
from ventryx._shim import AsyncShim

__all__ = ["aiohttp_pipeline"]


def aiohttp_pipeline(options: ClientOptions, concurrency: int) -> Pipeline:
    """A pipeline with its own aiohttp-backed ``httpx.AsyncClient``; close its shim after."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "transport='aiohttp' needs asyncio (aiohttp does not run on trio); "
            "use the default transport, which works on both"
        ) from None
    try:
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional extra, lazily
    except ImportError:
        raise ConfigurationError(
            "transport='aiohttp' needs the aiohttp extra: pip install 'ventryx[aiohttp]'"
        ) from None
    limits = httpx.Limits(max_connections=max(concurrency, 1), max_keepalive_connections=None)
    client = httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=options.timeout,
        follow_redirects=False,
    )
    return Pipeline(AsyncShim(client, owned=True), options)

"""``AsyncVentryx``: the async client, wiring the resources to an ``httpx.AsyncClient``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import httpx

from ventryx import _constants as C
from ventryx._logging import setup_from_env
from ventryx._options import (
    ClientOptions,
    check_call_timeout,
    check_headers,
    check_max_response_bytes,
    check_max_retries,
    check_query,
    check_retry_policy,
    resolve_options,
    resolve_timeout,
)
from ventryx._pipeline import Pipeline
from ventryx._retry import RetryPolicy
from ventryx._transports import (
    Transport,
    make_async_shim,
    transport_of,
)
from ventryx._types import NOT_GIVEN, Headers, NotGiven, Query, TimeoutTypes
from ventryx.resources.events import AsyncEvents
from ventryx.resources.workflows import AsyncWorkflows

if TYPE_CHECKING:
    from ventryx._bulk._redis_gate import RedisRateGate

__all__ = ["AsyncVentryx"]


class AsyncVentryx:
    """The async Ventryx client; use it with ``async with`` (asyncio or trio).

    ``api_key`` and ``base_url`` default to ``VENTRYX_API_KEY`` and ``VENTRYX_BASE_URL``. An
    injected ``http_client`` (proxies, mTLS, event hooks) is used as is and never closed here.

    ``timeout`` bounds each attempt as a whole (the largest of its phases for an
    ``httpx.Timeout``), however slowly the server trickles its answer; ``call_timeout`` bounds
    a whole call, every attempt and every wait between them (``None``: only the attempts are
    bounded). ``max_response_bytes`` caps one answer, counted decoded (default 8 MiB).

    ``rate_gate`` (a ``ventryx.RedisRateGate``) shares one rate limit with every client, on
    any host, whose gate names the same key.
    """

    workflows: AsyncWorkflows
    events: AsyncEvents

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        retry_policy: RetryPolicy | None = None,
        default_headers: Headers | None = None,
        default_query: Query | None = None,
        http_client: httpx.AsyncClient | None = None,
        rate_gate: RedisRateGate | None = None,
        max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES,
        call_timeout: float | None = None,
        transport: Transport = "httpx",
    ) -> None:
        """``transport`` is what every request goes through (the blocking client has httpx only).

        ``"httpx"`` (the default) works on asyncio and trio, and is the one an injected
        ``http_client`` implies. ``"aiohttp"`` (asyncio only, needs ``ventryx[aiohttp]``) is
        several times faster at high concurrency. ``"auto"`` is aiohttp when it is installed
        and the client is created in a running asyncio loop, httpx otherwise. Errors, retries,
        timeouts, logging and raw responses are the same on both; ``events.emit_many``
        follows the client's choice.
        """
        setup_from_env()
        options = resolve_options(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            default_headers=default_headers,
            default_query=default_query,
            rate_gate=rate_gate,
            max_response_bytes=max_response_bytes,
            call_timeout=call_timeout,
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError(
                "http_client must be an httpx.AsyncClient (use ventryx_sync for httpx.Client)"
            )
        self._bind(Pipeline(make_async_shim(transport, options, http_client), options), owner=True)

    def _bind(self, pipeline: Pipeline, *, owner: bool) -> None:
        self._pipeline = pipeline
        self._owner = owner
        self.workflows = AsyncWorkflows(pipeline)
        self.events = AsyncEvents(pipeline)

    @classmethod
    def _from_pipeline(cls, pipeline: Pipeline, *, owner: bool) -> AsyncVentryx:
        """A client over an existing pipeline (``with_options`` copies and the sync facade)."""
        client = cls.__new__(cls)
        client._bind(pipeline, owner=owner)
        return client

    @property
    def base_url(self) -> str:
        """The API root every path is joined to, e.g. ``https://api.ventryx.io/v1``."""
        return self._pipeline.options.base_url

    @property
    def max_retries(self) -> int:
        return self._pipeline.options.max_retries

    @property
    def timeout(self) -> httpx.Timeout | None:
        return self._pipeline.options.timeout

    @property
    def transport(self) -> Literal["httpx", "aiohttp"]:
        """The transport chosen for this client's requests (``"auto"`` resolved)."""
        return transport_of(self._pipeline.shim)

    @property
    def is_closed(self) -> bool:
        return self._pipeline.shim.is_closed

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        default_headers: Headers | None = None,
        default_query: Query | None = None,
        max_response_bytes: int | None = None,
        call_timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> AsyncVentryx:
        """A copy with some settings changed, sharing this client's connection pool.

        Closing the copy does not close the pool; closing the original does.
        """
        check_retry_policy(retry_policy)
        current = self._pipeline.options
        key, url = current.api_key, current.base_url
        if api_key is not None or base_url is not None:
            fresh = resolve_options(
                api_key=api_key if api_key is not None else current.api_key,
                base_url=base_url if base_url is not None else current.base_url,
                timeout=NOT_GIVEN,
                max_retries=0,
                retry_policy=None,
                default_headers=None,
                default_query=None,
            )
            key, url = fresh.api_key, fresh.base_url
        options = ClientOptions(
            api_key=key,
            base_url=url,
            timeout=resolve_timeout(timeout, current.timeout),
            max_retries=(
                current.max_retries if max_retries is None else check_max_retries(max_retries)
            ),
            retry_policy=retry_policy or current.retry_policy,
            default_headers={
                **current.default_headers,
                **check_headers(default_headers, "default_headers"),
            },
            default_query={**current.default_query, **check_query(default_query, "default_query")},
            rate_gate=current.rate_gate,
            max_response_bytes=(
                current.max_response_bytes
                if max_response_bytes is None
                else check_max_response_bytes(max_response_bytes)
            ),
            call_timeout=(
                current.call_timeout
                if isinstance(call_timeout, NotGiven)
                else check_call_timeout(call_timeout)
            ),
        )
        return type(self)._from_pipeline(self._pipeline.with_options(options), owner=False)

    async def aclose(self) -> None:
        """Close the connection pool (unless injected, or this is a ``with_options`` copy)."""
        if self._owner:
            await self._pipeline.shim.aclose()

    async def __aenter__(self) -> AsyncVentryx:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} base_url={self.base_url!r}>"

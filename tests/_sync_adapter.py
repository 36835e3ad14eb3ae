"""The sync client behind the async client's surface, so one behaviour test checks both.

``await client.events.emit(...)`` calls ``Ventryx.events.emit(...)``; ``client.events.list(...)``
calls the sync ``list`` at once (its first page is fetched eagerly) and gives something that
can be awaited (the page) or iterated with ``async for`` (every item, page by page, through
the sync ``Page``'s own iteration). Blocking inside a test coroutine is fine: the local server
runs in another thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import ventryx_sync


class AsyncIteratorOver:
    """An async iterator that steps a sync iterator (a class, not an async generator: nothing
    is left to finalize when a test breaks out of the loop)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items

    def __aiter__(self) -> AsyncIteratorOver:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


def adapt(value: Any) -> Any:
    if isinstance(value, ventryx_sync.Page):
        return PageAdapter(value)
    if isinstance(value, ventryx_sync.Ventryx):
        return ClientAdapter(value)
    return value


async def _value(value: Any) -> Any:
    return value


class PageAdapter:
    """A sync ``Page`` seen as an ``AsyncPage``."""

    def __init__(self, page: ventryx_sync.Page[Any]) -> None:
        self.sync_page = page

    def __getattr__(self, name: str) -> Any:  # data, meta, raw_response, has_next_page
        return getattr(self.sync_page, name)

    def __repr__(self) -> str:
        return repr(self.sync_page)

    def __len__(self) -> int:
        return len(self.sync_page)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.sync_page.data)  # AsyncPage: this page only

    async def next_page(self) -> PageAdapter | None:
        return adapt(self.sync_page.next_page())

    def iter_pages(self) -> AsyncIteratorOver:
        return AsyncIteratorOver(PageAdapter(p) for p in self.sync_page.iter_pages())

    def iter_items(self) -> AsyncIteratorOver:
        return AsyncIteratorOver(self.sync_page.iter_items())

    def __aiter__(self) -> AsyncIteratorOver:
        return AsyncIteratorOver(iter(self.sync_page))  # every item of every page


class PagerAdapter(PageAdapter):
    """What ``list()`` gives: await it for the first page, or iterate it for every item."""

    def __await__(self) -> Any:
        return _value(PageAdapter(self.sync_page)).__await__()

    async def first_page(self) -> PageAdapter:
        return PageAdapter(self.sync_page)


class ResourceAdapter:
    """``client.workflows`` / ``client.events``: every method awaitable, ``list`` a pager."""

    def __init__(self, resource: Any) -> None:
        self.sync_resource = resource

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.sync_resource, name)
        if str(inspect.signature(method).return_annotation).startswith("Page["):

            def listing(*args: Any, **kwargs: Any) -> PagerAdapter:
                return PagerAdapter(method(*args, **kwargs))

            return listing

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            async def run() -> Any:
                return adapt(method(*args, **kwargs))

            return run()

        return call


class ClientAdapter:
    """A ``ventryx_sync.Ventryx`` with ``AsyncVentryx``'s surface."""

    def __init__(self, client: ventryx_sync.Ventryx) -> None:
        self.sync_client = client
        self.workflows = ResourceAdapter(client.workflows)
        self.events = ResourceAdapter(client.events)

    def __getattr__(self, name: str) -> Any:  # base_url, max_retries, timeout, is_closed
        return getattr(self.sync_client, name)

    def __repr__(self) -> str:
        return repr(self.sync_client)

    @property
    def _pipeline(self) -> Any:
        return self.sync_client._inner._pipeline

    def with_options(self, **kwargs: Any) -> ClientAdapter:
        return ClientAdapter(self.sync_client.with_options(**kwargs))

    async def aclose(self) -> None:
        self.sync_client.close()

    async def __aenter__(self) -> ClientAdapter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.sync_client.close()

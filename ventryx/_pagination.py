"""Pages of a list endpoint and the pager that walks them.

``await client.workflows.list()`` is the first ``AsyncPage``; ``async for wf in
client.workflows.list()`` walks every item of every page, one request per page, lazily.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ventryx._constants import PAGE_SIZE_MAX
from ventryx._errors import InvalidInputError

if TYPE_CHECKING:
    from ventryx.models import PageMeta, RawResponse

__all__ = ["AsyncPage", "AsyncPager", "check_page_params"]

_T = TypeVar("_T")

FetchPage = Callable[[int], Awaitable["AsyncPage[_T]"]]


def check_page_params(page: object, per_page: object) -> tuple[int | None, int | None]:
    """``page`` >= 1 and ``per_page`` in 1..100, as integers (``None`` leaves the API default)."""
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise InvalidInputError("page", f"must be an integer >= 1, got {page!r}")
    if per_page is not None and (
        isinstance(per_page, bool)
        or not isinstance(per_page, int)
        or not 1 <= per_page <= PAGE_SIZE_MAX
    ):
        raise InvalidInputError(
            "per_page", f"must be an integer from 1 to {PAGE_SIZE_MAX}, got {per_page!r}"
        )
    return page, per_page


class AsyncPage(Generic[_T]):
    """One page of results: ``data``, ``meta``, and the way to the next page."""

    __slots__ = ("_data", "_fetch", "_meta", "_raw_response")

    def __init__(
        self,
        data: Sequence[_T],
        meta: PageMeta,
        *,
        fetch: FetchPage[_T],
        raw_response: RawResponse | None = None,
    ) -> None:
        self._data: list[_T] = list(data)
        self._meta = meta
        self._raw_response = raw_response
        self._fetch = fetch

    @property
    def data(self) -> list[_T]:
        """The items of this page."""
        return self._data

    @property
    def meta(self) -> PageMeta:
        """Where this page stands (``page``, ``per_page``, ``total``)."""
        return self._meta

    @property
    def raw_response(self) -> RawResponse | None:
        """The HTTP side of the answer this page came in."""
        return self._raw_response

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"<{type(self).__name__} page={m.page} per_page={m.per_page} "
            f"total={m.total} items={len(self.data)}>"
        )

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[_T]:
        """The items of this page only (``async for`` walks every page)."""
        return iter(self.data)

    @property
    def has_next_page(self) -> bool:
        """Whether a later page holds more items.

        Not when this page is empty, short (fewer items than ``per_page``), or reaches
        ``meta.total``, nor when ``meta`` is nonsense (``page`` or ``per_page`` below 1): a
        walk over the pages always ends, whatever the server says.
        """
        m = self.meta
        if not self.data or m.page < 1 or m.per_page < 1 or len(self.data) < m.per_page:
            return False
        return m.page * m.per_page < m.total

    async def next_page(self) -> AsyncPage[_T] | None:
        """Fetch the page after this one, or return ``None`` when this is the last.

        A server that answers with the same (or an earlier) page number again ends the walk.
        """
        if not self.has_next_page:
            return None
        page = await self._fetch(self.meta.page + 1)
        return page if page.meta.page > self.meta.page else None

    def iter_pages(self) -> AsyncIterator[AsyncPage[_T]]:
        """This page and every page after it."""
        return _PageIterator(self._itself)

    def iter_items(self) -> AsyncIterator[_T]:
        """Every item of this page and of every page after it."""
        return _ItemIterator(_PageIterator(self._itself))

    async def _itself(self) -> AsyncPage[_T]:
        return self

    def __aiter__(self) -> AsyncIterator[_T]:
        return self.iter_items()


class AsyncPager(Generic[_T]):
    """What ``list()`` returns: await it for the first page, or iterate it for every item."""

    __slots__ = ("_fetch", "_first")

    def __init__(self, fetch: FetchPage[_T], first: int) -> None:
        self._fetch = fetch
        self._first = first

    async def first_page(self) -> AsyncPage[_T]:
        """The page the call asked for."""
        return await self._fetch(self._first)

    def __await__(self) -> Generator[Any, None, AsyncPage[_T]]:
        return self.first_page().__await__()

    def iter_pages(self) -> AsyncIterator[AsyncPage[_T]]:
        """Every page from the first one asked for, fetched one at a time."""
        return _PageIterator(self.first_page)

    def iter_items(self) -> AsyncIterator[_T]:
        """Every item of every page, fetched one page at a time."""
        return _ItemIterator(_PageIterator(self.first_page))

    def __aiter__(self) -> AsyncIterator[_T]:
        return self.iter_items()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the pager lacks: a page's names mean a missing ``await``.
        if name in _PAGE_NAMES:
            raise AttributeError(
                f"'AsyncPager' has no attribute {name!r}: list() returns a pager, not a page; "
                f"did you forget await? (page = await client.workflows.list(); page.{name})"
            )
        raise AttributeError(f"'AsyncPager' object has no attribute {name!r}")

    def __iter__(self) -> Iterator[_T]:
        raise TypeError(
            "'AsyncPager' is not iterable with a plain for: use `async for item in "
            "client.workflows.list()`, or `await` it for the first page"
        )


_PAGE_NAMES = frozenset({"data", "meta", "raw_response", "has_next_page", "next_page"})


# Iterator classes rather than async generators: breaking out of an ``async for`` then leaves
# nothing to finalize (an abandoned async generator warns on trio), and the sync facade can
# drive ``__anext__`` directly.
class _PageIterator(Generic[_T]):
    __slots__ = ("_next", "_start")

    def __init__(self, start: Callable[[], Awaitable[AsyncPage[_T]]]) -> None:
        self._start: Callable[[], Awaitable[AsyncPage[_T]]] | None = start
        self._next: AsyncPage[_T] | None = None

    def __aiter__(self) -> _PageIterator[_T]:
        return self

    async def __anext__(self) -> AsyncPage[_T]:
        if self._start is not None:
            start, self._start = self._start, None
            page: AsyncPage[_T] | None = await start()
        elif self._next is not None:
            page = await self._next.next_page()
        else:
            page = None
        self._next = page
        if page is None:
            raise StopAsyncIteration
        return page


class _ItemIterator(Generic[_T]):
    __slots__ = ("_items", "_pages")

    def __init__(self, pages: _PageIterator[_T]) -> None:
        self._pages = pages
        self._items: Iterator[_T] = iter(())

    def __aiter__(self) -> _ItemIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        while True:
            for item in self._items:
                return item
            page = await self._pages.__anext__()
            self._items = iter(page.data)

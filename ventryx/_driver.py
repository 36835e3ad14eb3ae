"""Run the async resource code to completion without an event loop (the sync facade's engine).

Under ``BlockingShim`` nothing below a resource ever suspends, so one ``send(None)`` finishes a
coroutine: no loop, no thread. A coroutine that does suspend is a bug in the SDK; ``drive``
closes it and raises ``DriverError`` instead of blocking forever or returning garbage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Generic, TypeVar

from ventryx._errors import DriverError

__all__ = ["BlockingIterator", "drive", "iterate", "step"]

_T = TypeVar("_T")


def _name(awaitable: object) -> str:
    name = getattr(awaitable, "__qualname__", None)
    return str(name) if name else repr(awaitable)


def drive(awaitable: Awaitable[_T]) -> _T:
    """Run ``awaitable`` to completion in one step and return its result (or raise its error)."""
    steps = awaitable.__await__()
    try:
        yielded = steps.send(None)
    except StopIteration as stop:
        result: _T = stop.value
        return result
    name = _name(awaitable)
    steps.close()
    raise DriverError(
        f"{name} suspended (it yielded {yielded!r}) while driven by the sync client, which only "
        "runs code that never suspends. This is a bug in ventryx: please report it."
    )


def step(source: AsyncIterator[_T]) -> _T:
    """The next item of ``source``, driven like ``drive``; ``StopIteration`` at its end."""
    try:
        return drive(source.__anext__())
    except StopAsyncIteration:
        raise StopIteration from None


class BlockingIterator(Generic[_T]):
    """An async iterator turned into an iterator; closing it (or dropping it) closes the source.

    Closing explicitly matters: an async generator dropped half-way would otherwise be handed
    to whatever event loop runs in the thread (trio warns about it), or never finalised.
    """

    __slots__ = ("_done", "_source")

    def __init__(self, source: AsyncIterator[_T]) -> None:
        self._source = source
        self._done = False

    def __iter__(self) -> BlockingIterator[_T]:
        return self

    def __next__(self) -> _T:
        if self._done:
            raise StopIteration
        try:
            return step(self._source)
        except BaseException:
            # The source finished or raised: an async generator is done either way.
            self._done = True
            raise

    def close(self) -> None:
        """Stop early: close the source (``aclose()``, driven) if it can be closed."""
        if self._done:
            return
        self._done = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            drive(aclose())

    def __del__(self) -> None:
        if hasattr(self, "_done"):
            self.close()


def iterate(source: AsyncIterator[_T]) -> Iterator[_T]:
    """``source`` as a blocking iterator (see ``BlockingIterator``)."""
    return BlockingIterator(source)

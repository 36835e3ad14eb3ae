"""``Emitter``: the emitter of the blocking client, delivering from a thread of its own.

``enqueue`` stores the event in the caller's thread and returns; a daemon thread runs an event
loop with the async emitter and its own ``httpx.AsyncClient`` (the only other place the sync
client runs a loop is ``emit_many``, DESIGN.md section 2). ``close()`` (or leaving the ``with``
block) drains within ``drain_timeout``; so does interpreter exit for emitters never closed. In a
forked child (gunicorn, Celery prefork) the parent's thread does not exist: the child starts its
own on first use, with its own connection to the outbox file.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anyio
    from anyio.from_thread import BlockingPortal

    from ventryx._emitter._async import AsyncEmitter, EmitterStats

__all__ = ["Emitter"]

_START_TIMEOUT = 30.0
_LIVE: weakref.WeakSet[Emitter] = weakref.WeakSet()


class Emitter:
    """Background delivery from an outbox for blocking code; see ``AsyncEmitter``.

    Made by ``client.events.emitter(...)``; use it as ``with ... as emitter:`` (or call
    ``close()``). ``enqueue`` may be called from any thread.
    """

    def __init__(self, inner: AsyncEmitter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._stop: anyio.Event | None = None
        self._closed = False
        _LIVE.add(self)

    @property
    def outbox(self) -> str | None:
        """The outbox file, or None (in memory)."""
        return self._inner.outbox

    @property
    def stats(self) -> EmitterStats:
        """Counts now (see ``EmitterStats``)."""
        return self._inner.stats

    def enqueue(
        self, *, type: str, data: dict[str, Any] | None = None, key: str | None = None
    ) -> str | None:
        """Store one event; returns its Idempotency-Key, or None if a full outbox dropped it.

        See ``AsyncEmitter.enqueue``; ``on_full="block"`` waits here for room.
        """
        if not self._closed:
            self._ensure_running()
        return self._inner.enqueue(type=type, data=data, key=key)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every stored event is settled, at most ``timeout`` seconds (None: no bound).

        True if nothing is left; False if the bound came first (the rest stays stored).
        """
        portal = self._ensure_running()
        if portal is None:
            return self._inner.stats.pending == 0
        return portal.call(self._inner.flush, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is stored for at most ``timeout`` seconds (``drain_timeout`` by default),
        then stop the thread; what is left stays in the outbox file (lost, and logged, in
        memory)."""
        with self._lock:
            self._check_fork()
            if self._closed:
                return
            self._closed = True
            thread, portal, stop = self._thread, self._portal, self._stop
        if thread is None or portal is None or stop is None:
            self._inner._store.close()  # pyright: ignore[reportPrivateUsage]
            return
        try:
            portal.call(self._inner.aclose, timeout)
            portal.call(stop.set)
        except RuntimeError:  # the loop is already gone
            pass
        thread.join()

    def __enter__(self) -> Emitter:
        self._ensure_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.outbox is None else repr(self.outbox)
        return f"<Emitter outbox={where} closed={self._closed}>"

    # -- the thread ---------------------------------------------------------------------------

    def _check_fork(self) -> None:
        """In a forked child: forget the parent's thread; a fresh emitter, same settings."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = self._portal = self._stop = None
        self._inner = self._inner._copy()  # pyright: ignore[reportPrivateUsage]

    def _ensure_running(self) -> BlockingPortal | None:
        with self._lock:
            self._check_fork()
            if self._closed:
                return None
            if self._thread is None:
                self._start()
            return self._portal

    def _start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._run, args=(ready, failure), name="ventryx-emitter", daemon=True
        )
        thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            raise failure[0] if failure else RuntimeError("the emitter thread did not start")
        self._thread = thread

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        import anyio  # noqa: PLC0415 - the sync facade loads the loop only when it needs it

        try:
            anyio.run(self._main, ready, backend="asyncio")
        except BaseException as exc:  # reported to the thread that started us
            if not ready.is_set():
                failure.append(exc)
                ready.set()
            else:
                raise

    async def _main(self, ready: threading.Event) -> None:
        import anyio  # noqa: PLC0415
        from anyio.from_thread import BlockingPortal  # noqa: PLC0415

        from ventryx._pipeline import Pipeline  # noqa: PLC0415
        from ventryx._shim import AsyncShim  # noqa: PLC0415
        from ventryx._transports import make_async_http_client  # noqa: PLC0415

        inner = self._inner
        options = inner._pipeline.options  # pyright: ignore[reportPrivateUsage]
        shim = AsyncShim(make_async_http_client(options), owned=True)
        inner._pipeline = Pipeline(shim, options)  # pyright: ignore[reportPrivateUsage]
        stop = anyio.Event()
        try:
            async with BlockingPortal() as portal, inner:
                self._portal, self._stop = portal, stop
                ready.set()
                await stop.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await shim.aclose()


def _after_fork_in_child() -> None:
    # The parent's threads are gone in the child, and a lock one of them held stays held.
    for emitter in list(_LIVE):
        emitter._lock = threading.Lock()  # pyright: ignore[reportPrivateUsage]
        emitter._check_fork()  # pyright: ignore[reportPrivateUsage]


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _drain_at_exit() -> None:
    """Emitters never closed drain (each within its ``drain_timeout``) as the interpreter exits."""
    for emitter in list(_LIVE):
        with contextlib.suppress(Exception):  # exiting: nothing left to tell
            emitter.close()

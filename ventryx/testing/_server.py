"""Serving the app on a real socket: in a background thread (``LocalServer``) or in the
foreground until a signal (``serve_forever``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from typing import Any

import anyio.to_thread

from ventryx.testing._app import VentryxApp
from ventryx.testing._config import DEFAULT_TEST_KEY, ServerConfig
from ventryx.testing._http import HTTPServer
from ventryx.testing._ledger import Ledger

_START_TIMEOUT = 10.0


class LocalServer:
    """The Ventryx API on ``127.0.0.1`` in a background thread with its own asyncio loop.

    Use it as ``with LocalServer() as srv:`` or ``async with`` (asyncio or trio), or call
    ``start()`` / ``stop()``; ``stop`` closes every connection and joins the thread.
    """

    def __init__(
        self, config: ServerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = VentryxApp(config)
        self.host = host
        self.port = port
        self._requested_port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- attributes ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        """A key the server accepts (the default test key unless configured otherwise)."""
        return self.app.config.default_key

    @property
    def config(self) -> ServerConfig:
        """The configuration in force."""
        return self.app.config

    @property
    def ledger(self) -> Ledger:
        """What the server saw and applied."""
        return self.app.ledger

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def configure(self, **changes: Any) -> ServerConfig:
        """Replace config fields at runtime (``rate_limit``, ``faults``, ``seed``...)."""
        return self.app.configure(**changes)

    def release_delayed(self) -> None:
        """Answer every request the ``delay`` fault is holding now, without waiting out the
        rest of its delay."""
        self.app.release_delayed()

    def reset(self) -> None:
        """Clear data, ledger, idempotency store and rate-limit bucket."""
        self.app.reset()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalServer:
        """Bind and start serving; returns once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this LocalServer is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name=f"ventryx-local-server-{id(self):x}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the local server did not start in time")
        error = self._startup_error()
        if error is not None:
            self._thread.join()
            self._thread = None
            raise error
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop_event.set)
        thread.join()
        self._thread = None
        self._loop = None
        self._stop_event = None
        self.port = self._requested_port

    def _startup_error(self) -> BaseException | None:
        return self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that called start()
            self._error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        http = HTTPServer(self.app)
        await http.start(self.host, self.port)
        self.port = http.port
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await http.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalServer {self.url} {state}>"


def serve_forever(config: ServerConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve in the foreground; print the base URL once ready; stop on SIGINT or SIGTERM."""
    asyncio.run(_serve_until_signal(VentryxApp(config), host, port))


async def _serve_until_signal(app: VentryxApp, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # not on Windows nor off the main thread: Ctrl-C then ends the run as KeyboardInterrupt
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    http = HTTPServer(app)
    await http.start(host, port)
    shown = f"[{http.host}]" if ":" in http.host else http.host
    base_url = f"http://{shown}:{http.port}/v1"
    sys.stdout.write(f"Ventryx local server ready at {base_url}\n")
    # A line to paste into another shell (the clients and the CLI read both variables). Only
    # the built-in test key is public; keys given with --api-key are never printed.
    if DEFAULT_TEST_KEY in app.config.api_keys:
        sys.stdout.write(f"export VENTRYX_API_KEY={DEFAULT_TEST_KEY} VENTRYX_BASE_URL={base_url}\n")
    else:
        sys.stdout.write(
            f"export VENTRYX_BASE_URL={base_url}  # and VENTRYX_API_KEY=<one of your --api-key>\n"
        )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await http.close()

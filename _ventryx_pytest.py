"""The pytest plugin that installing ``ventryx`` registers (entry point ``pytest11``).

It lives outside the ``ventryx`` package on purpose: pytest imports every registered plugin in
every run of every project that has ventryx installed, and importing anything under
``ventryx.`` would load the SDK (httpx included) first. This module imports only pytest; the
local server is imported when a test asks for a fixture. ``ventryx.testing.pytest_plugin``
re-exports the same fixtures for ``pytest_plugins = ["ventryx.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ventryx.testing import LocalServer, ServerConfig

__all__ = ["ventryx_server", "ventryx_server_factory"]


@pytest.fixture
def ventryx_server() -> Iterator[LocalServer]:
    """A local Ventryx server on 127.0.0.1 with the default config, stopped after the test."""
    from ventryx.testing import LocalServer  # noqa: PLC0415 - keeps plugin import cheap

    with LocalServer() as server:
        yield server


@pytest.fixture
def ventryx_server_factory() -> Iterator[Callable[[ServerConfig | None], LocalServer]]:
    """``factory(config)``: a started server with ``config``; all are stopped after the test."""
    from ventryx.testing import LocalServer  # noqa: PLC0415 - keeps plugin import cheap

    started: list[LocalServer] = []

    def factory(config: ServerConfig | None = None) -> LocalServer:
        server = LocalServer(config).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()

"""Pytest fixtures for tests of code that uses the Ventryx SDK.

Installing ``ventryx`` registers this plugin (the ``pytest11`` entry point), so the fixtures
are there in every test run; nothing starts unless a test asks for one, and the server module
is imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ventryx.testing import LocalServer, ServerConfig


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

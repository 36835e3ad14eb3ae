"""Shared fixtures: every async test runs on asyncio and trio; a fresh local server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ventryx.testing import LocalServer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local Ventryx server on a real 127.0.0.1 socket, fresh for each test."""
    with LocalServer() as srv:
        yield srv

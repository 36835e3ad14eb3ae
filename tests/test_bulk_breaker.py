"""``emit_many(stop_after_connection_failures=N)``: the circuit breaker for an unreachable API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ventryx import APIConnectionError, AsyncVentryx, InvalidInputError, RetryPolicy
from ventryx._bulk._results import BulkSummary
from ventryx.testing import Fault, FaultRule, LocalServer, ServerConfig

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.02)


def gen(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"type": "breaker.test", "data": {"i": i}}


def dead_url() -> str:
    """A base URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_unreachable_api_stops_after_n_failures(anyio_backend: str) -> None:
    async with AsyncVentryx(
        api_key="vx_test_local_key", base_url=dead_url(), retry_policy=FAST_RETRY, max_retries=5
    ) as client:
        with pytest.raises(APIConnectionError, match="10 connection failures in a row") as info:
            await client.events.emit_many(
                gen(5000), concurrency=4, stop_after_connection_failures=10
            )
    summary: BulkSummary = info.value.summary  # type: ignore[attr-defined]
    assert summary.stopped_by is info.value
    assert summary.delivered == 0
    assert sum(summary.counts.values()) == summary.pulled
    assert summary.pulled < 100  # it stopped pulling long before the end
    assert summary.attempts < 40  # not 5000 events x 6 attempts


async def test_answers_reset_the_count(anyio_backend: str) -> None:
    # Every other attempt is reset before an answer: never 3 in a row, so the run completes.
    flaky = FaultRule(
        "POST /v1/events", sequence=[Fault("reset_before"), Fault("status", status=503)] * 20
    )
    with LocalServer(ServerConfig(faults=[flaky])) as server:
        async with AsyncVentryx(
            api_key=server.api_key,
            base_url=server.base_url,
            retry_policy=FAST_RETRY,
            max_retries=50,
        ) as client:
            summary = await client.events.emit_many(
                gen(50), concurrency=1, stop_after_connection_failures=2
            )
        assert summary.delivered == 50
        assert len(server.ledger.events) == 50


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
async def test_bad_limit_is_a_typed_error(anyio_backend: str, bad: Any) -> None:
    async with AsyncVentryx(api_key="k", base_url=dead_url()) as client:
        with pytest.raises(InvalidInputError, match="stop_after_connection_failures"):
            await client.events.emit_many(gen(1), stop_after_connection_failures=bad)

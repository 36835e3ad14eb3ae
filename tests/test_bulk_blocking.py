"""``run_on_portal``: the async engine on a portal, for sync code (and Ctrl-C)."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ventryx import RetryPolicy
from ventryx._bulk._blocking import run_on_portal
from ventryx._bulk._results import BulkSummary
from ventryx._options import resolve_options
from ventryx._types import NOT_GIVEN
from ventryx.resources import AsyncEvents
from ventryx.testing import Fault, FaultRule, LocalServer, RateLimit, ServerConfig

ROUTE = "POST /v1/events"


def options_for(server: LocalServer) -> Any:
    return resolve_options(
        api_key=server.api_key,
        base_url=server.base_url,
        timeout=NOT_GIVEN,
        max_retries=15,
        retry_policy=RetryPolicy(initial_delay=0.01, max_delay=0.05),
        default_headers=None,
        default_query=None,
    )


def gen(n: int, *, keyed: bool = False) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"type": "sync.test", "data": {"i": i}, **({"key": f"k{i}"} if keyed else {})}


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["run_on_portal", "ventryx_sync"])
def test_ten_thousand_events_under_faults_through_the_portal(entry: str) -> None:
    faults = [
        FaultRule(ROUTE, fault=Fault("status", status=503), probability=0.03),
        FaultRule(ROUTE, fault=Fault("reset_before"), probability=0.01),
        FaultRule(ROUTE, fault=Fault("reset_after"), probability=0.01),
        FaultRule(ROUTE, fault=Fault("rate_limited", retry_after="0.02"), probability=0.002),
    ]
    with LocalServer(ServerConfig(faults=faults, seed=3, record_requests=False)) as server:
        if entry == "ventryx_sync":
            from ventryx_sync import Ventryx

            with Ventryx(
                api_key=server.api_key,
                base_url=server.base_url,
                max_retries=15,
                retry_policy=RetryPolicy(initial_delay=0.01, max_delay=0.05),
            ) as client:
                summary = client.events.emit_many(gen(10_000), concurrency=32, transport="aiohttp")
        else:
            summary = run_on_portal(
                options_for(server),
                lambda pipeline: AsyncEvents(pipeline).emit_many(
                    gen(10_000), concurrency=32, transport="aiohttp"
                ),
            )
        assert summary.delivered == 10_000
        assert sum(summary.counts.values()) == 10_000
        assert len({e["idempotency_key"] for e in server.ledger.events}) == 10_000
        assert server.ledger.duplicates == 0


@pytest.mark.slow  # seconds of wall clock, the same on every Python: run once
def test_keyboard_interrupt_settles_then_propagates() -> None:
    n = 1500
    config = ServerConfig(rate_limit=RateLimit(300, burst=10), record_requests=False)
    with LocalServer(config) as server:
        summary = BulkSummary()
        timer = threading.Timer(1.0, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                run_on_portal(
                    options_for(server),
                    lambda pipeline: AsyncEvents(pipeline).emit_many(
                        gen(n, keyed=True), summary=summary
                    ),
                )
        finally:
            timer.cancel()
        assert summary.cancelled
        assert 0 < summary.pulled < n
        assert sum(summary.counts.values()) == summary.pulled
        assert summary.delivered <= len(server.ledger.events)
        # The re-run completes the import without duplicating anything.
        again = run_on_portal(
            options_for(server),
            lambda pipeline: AsyncEvents(pipeline).emit_many(gen(n, keyed=True)),
        )
        assert again.delivered == n
        assert len(server.ledger.events) == n
        assert server.ledger.duplicates == 0

"""Rate control over real HTTP: the stall, flood and poisoning cases of issue 13.

Through ``AsyncVentryx`` and the sync ``ventryx_sync.Ventryx`` (the ``client_kind``
parameter), on asyncio and trio, against the local server on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest

from ventryx.testing import Fault, FaultRule, LocalServer, RateLimit

pytestmark = pytest.mark.anyio
ROUTE = "POST /v1/events"


def items(n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {"type": "rc.test", "data": {"run": prefix, "i": i}, "key": f"{prefix}-{i}"}
        for i in range(n)
    ]


def applied_once(server: LocalServer, delivered: int) -> None:
    assert server.ledger.duplicates == 0
    assert len(server.ledger.events) == delivered


@pytest.mark.parametrize(
    "huge",
    ["1" + "0" * 308, "3600", "Fri, 01 Jan 2100 00:00:00 GMT"],
    ids=["1e308", "hour", "2100"],
)
async def test_a_huge_retry_after_fails_its_event_and_stalls_nothing(
    make_client: Any, server: LocalServer, huge: str
) -> None:
    server.configure(
        faults=[FaultRule(ROUTE, fault=Fault("rate_limited", retry_after=huge), probability=0.2)]
    )
    client = make_client()
    first = await client.events.emit_many(items(60, "a"), concurrency=8)
    assert first.failed > 0  # those asked to wait beyond max_retry_after
    assert first.delivered + first.failed == 60
    # The gate was not paused for an hour: a second run on the same client goes through.
    server.configure(faults=[])
    second = await client.events.emit_many(items(40, "b"), concurrency=8)
    assert second.delivered == 40
    applied_once(server, first.delivered + 40)


async def test_429_forever_with_retry_after_zero_is_bounded(
    make_client: Any, server: LocalServer
) -> None:
    server.configure(
        faults=[FaultRule(ROUTE, fault=Fault("rate_limited", retry_after="0"), probability=1.0)]
    )
    client = make_client()
    summary = await client.events.emit_many(items(20, "f"), concurrency=8, max_rate_limit_wait=0.5)
    assert summary.failed == 20  # max_rate_limit_wait ended every event
    # A few requests a second at most: the floor doubles from 50 ms, one probe per pause.
    assert server.ledger.rate_limited <= 8 + 20
    assert server.app.event_count == 0


async def test_sporadic_429s_do_not_ratchet_the_rate_down(
    make_client: Any, server: LocalServer
) -> None:
    server.configure(
        rate_limit=RateLimit(shape="sporadic", probability=0.05, sporadic_wait=0.001, seed=3)
    )
    client = make_client()
    summary = await client.events.emit_many(items(400, "s"), concurrency=16)
    assert summary.delivered == 400
    assert summary.rate_limited > 0
    applied_once(server, 400)


async def test_x_ratelimit_headers_of_2xx_answers_reach_the_gate(
    make_client: Any, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate gets the X-RateLimit headers of every 2xx answer, on every transport."""
    from ventryx._bulk import _run
    from ventryx._bulk._gate import RateGate, RateHeaders, Ticket

    class Recording(RateGate):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[RateHeaders | None] = []

        def on_answer(self, ticket: Ticket, headers: RateHeaders | None = None) -> None:
            self.seen.append(headers)
            super().on_answer(ticket, headers)

    gate = Recording()
    monkeypatch.setattr(_run, "gate_for", lambda owner: gate)
    server.configure(rate_limit=RateLimit(1000, burst=1000))
    summary = await make_client().events.emit_many(items(30, "h"), concurrency=4)
    assert summary.delivered == 30
    assert len(gate.seen) == 30
    assert all(h is not None and h.limit == 1000 for h in gate.seen), gate.seen[:3]
    remaining = sorted(h.remaining for h in gate.seen if h is not None and h.remaining is not None)
    assert remaining[0] < remaining[-1] <= 1000  # each answer's own count
    server.configure(rate_limit=None)
    gate.seen.clear()
    await make_client().events.emit_many(items(5, "n"), concurrency=2)
    assert gate.seen == [None] * 5  # no such headers: nothing made up

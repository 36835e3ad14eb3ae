"""Soak: many calls mixing every operation under seeded faults, with memory and sockets flat.

The short run (3,000 calls) is part of the default run; the full run (100,000 calls) is marked
``soak`` and runs only with ``VENTRYX_SOAK=1``::

    VENTRYX_SOAK=1 python -m pytest -m soak -s

The server runs in a subprocess (``python -m ventryx.testing``) so that the memory measured is
the client's; its ledger is read from ``/_testing/ledger``. Every route gets seeded faults of
every kind (a 5% chance in all), the calls run in several concurrent tasks, and each call ends
in a result or a typed ``VentryxError``: anything else fails the run.
"""

from __future__ import annotations

import collections
import gc
import os
import random
import select
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import psutil
import pytest

import ventryx
from ventryx import AsyncVentryx

pytestmark = [pytest.mark.reliability, pytest.mark.anyio]

ROUTES = [
    "GET /v1/workflows",
    "POST /v1/workflows",
    "GET /v1/workflows/{id}",
    "PATCH /v1/workflows/{id}",
    "DELETE /v1/workflows/{id}",
    "POST /v1/events",
    "GET /v1/events",
    "GET /v1/events/{id}",
]
FAULT_KINDS = [
    "status=500",
    "status=503",
    "html_502",
    "reset_before",
    "reset_after",
    "truncated",
    "malformed_json",
    "rate_limited=0.01",
    "delay=0.01",
]
FAULT_RATE = 0.05  # per request, all kinds together
# Per call: mostly emits, every operation present.
MIX = (
    ["events.emit"] * 8
    + ["events.retrieve"] * 2
    + ["events.list"] * 2
    + ["workflows.create"] * 3
    + ["workflows.retrieve"] * 2
    + ["workflows.update"] * 2
    + ["workflows.delete"]
    + ["workflows.list"]
)
STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}
SAMPLES = 40
TRACE_FROM = 0.9  # tracemalloc runs over the last 10% of the calls


@dataclass
class Soak:
    """The state and the figures of one run."""

    total: int
    concurrency: int
    port: int
    issued: int = 0
    done: int = 0
    emits: int = 0
    emitted: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    workflows: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=64))
    events: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=64))
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (done, rss, sockets)
    early: tracemalloc.Snapshot | None = None
    traced_from: int = 0

    def sample(self) -> None:
        rss = psutil.Process().memory_info().rss
        self.samples.append((self.done, rss, sockets_to(self.port)))
        if self.early is None and self.done >= self.total * TRACE_FROM:
            # tracemalloc slows every allocation about 5x: trace a window of the last calls,
            # where any per-call leak shows as growth times the calls in the window.
            tracemalloc.start()
            self.early = tracemalloc.take_snapshot()
            self.traced_from = self.done


def sockets_to(port: int) -> int:
    return sum(
        1 for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    )


async def _call(client: AsyncVentryx, soak: Soak, name: str, n: int, rng: random.Random) -> Any:
    if name == "events.emit":
        soak.emits += 1
        event = await client.events.emit(type="soak", data={"n": n})  # unique: no false dupes
        soak.emitted += 1
        soak.events.append(event.id)
        return event
    if name == "events.retrieve" and soak.events:
        return await client.events.retrieve(rng.choice(soak.events))
    if name == "events.list":
        return await client.events.list(page=rng.randint(1, 3), per_page=10)
    if name == "workflows.list":
        return await client.workflows.list(per_page=10)
    if name in ("workflows.retrieve", "workflows.update", "workflows.delete") and soak.workflows:
        wid = rng.choice(soak.workflows)
        if name == "workflows.retrieve":
            return await client.workflows.retrieve(wid)
        if name == "workflows.update":
            return await client.workflows.update(wid, name=f"soak-{n}")
        if wid in soak.workflows:
            soak.workflows.remove(wid)
        return await client.workflows.delete(wid)
    created = await client.workflows.create(name=f"soak-{n}", trigger={"event": "e"}, steps=[STEP])
    soak.workflows.append(created.id)
    return created


async def _worker(client: AsyncVentryx, soak: Soak, seed: int) -> None:
    rng = random.Random(seed)
    every = max(1, soak.total // SAMPLES)
    while soak.issued < soak.total:
        n = soak.issued
        soak.issued += 1
        try:
            await _call(client, soak, MIX[n % len(MIX)], n, rng)
        except ventryx.VentryxError as exc:
            soak.outcomes[type(exc).__name__] += 1
        else:
            soak.outcomes["ok"] += 1
        soak.done += 1
        if soak.done % every == 0:
            soak.sample()


@pytest.fixture
def soak_server() -> Iterator[str]:
    """The local server in a subprocess with seeded faults of every kind on every route."""
    chance = 1 - (1 - FAULT_RATE) ** (1 / len(FAULT_KINDS))
    faults = [f"--fault={r}:{k}:{chance:.6f}" for r in ROUTES for k in FAULT_KINDS]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ventryx.testing",
            "--port",
            "0",
            "--no-record",
            "--seed",
            "7",
            *faults,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the soak server did not start"
        assert proc.stdout is not None
        yield proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _ledger(base_url: str) -> dict[str, Any]:
    response = httpx.get(base_url.removesuffix("/v1") + "/_testing/ledger", timeout=30)
    data: dict[str, Any] = response.json()["data"]
    return data


def _quarters(values: list[int]) -> tuple[list[int], list[int]]:
    q = max(1, len(values) // 4)
    return values[:q], values[-q:]


async def run_soak(base_url: str, total: int, concurrency: int) -> dict[str, Any]:
    port = httpx.URL(base_url).port
    assert port is not None
    soak = Soak(total=total, concurrency=concurrency, port=port)
    policy = ventryx.RetryPolicy(initial_delay=0.005, max_delay=0.02)
    started = time.perf_counter()
    try:
        async with AsyncVentryx(
            "vx_test_local_key", base_url=base_url, retry_policy=policy, timeout=10.0
        ) as client:
            soak.sample()
            async with anyio.create_task_group() as tg:
                for seed in range(concurrency):
                    tg.start_soon(_worker, client, soak, seed)
        soak.sample()  # after close: the client's sockets are gone
        elapsed = time.perf_counter() - started
        gc.collect()  # count what is still reachable, not garbage awaiting collection
        late = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert soak.early is not None
    growth = late.compare_to(soak.early, "lineno")
    ledger = _ledger(base_url)
    rss = [s[1] for s in soak.samples]
    socks = [s[2] for s in soak.samples]
    rss_first, rss_last = _quarters(rss)
    socks_first, socks_last = _quarters(socks)
    return {
        "calls": soak.done,
        "seconds": round(elapsed, 1),
        "calls_per_second": round(soak.done / elapsed),
        "concurrency": concurrency,
        "outcomes": dict(soak.outcomes),
        "requests_sent": sum(ledger["attempts"].values()),
        "faults_injected": ledger["faults"],
        "faults_total": sum(ledger["faults"].values()),
        "emits": soak.emits,
        "emitted_ok": soak.emitted,
        "ledger_events": ledger["events"],
        "ledger_duplicates": ledger["duplicates"],
        "ledger_replays": ledger["replays"],
        "rss_start_mb": round(rss[0] / 2**20, 1),
        "rss_end_mb": round(rss[-1] / 2**20, 1),
        "rss_first_quarter_mean_mb": round(sum(rss_first) / len(rss_first) / 2**20, 1),
        "rss_last_quarter_mean_mb": round(sum(rss_last) / len(rss_last) / 2**20, 1),
        "sockets_start": socks[0],
        "sockets_end": socks[-1],
        "sockets_first_quarter_max": max(socks_first),
        "sockets_last_quarter_max": max(socks_last),
        "tracemalloc_window_calls": soak.done - soak.traced_from,
        "tracemalloc_growth_kb": round(sum(s.size_diff for s in growth) / 1024, 1),
        "tracemalloc_top_growth": [str(s) for s in growth[:3]],
    }


def check(figures: dict[str, Any], total: int, concurrency: int) -> None:
    print("\nsoak figures:")
    for name, value in figures.items():
        print(f"  {name}: {value}")
    outcomes = figures["outcomes"]
    assert figures["calls"] == total == sum(outcomes.values())  # every call accounted
    errors = total - outcomes.get("ok", 0)
    assert errors <= 0.03 * total, outcomes  # retries absorb nearly every fault
    assert figures["faults_total"] > 0.02 * total  # the faults really were injected
    assert figures["ledger_duplicates"] == 0
    assert figures["emitted_ok"] <= figures["ledger_events"] <= figures["emits"]
    rss_growth = figures["rss_last_quarter_mean_mb"] - figures["rss_first_quarter_mean_mb"]
    assert rss_growth < 40, f"RSS grew {rss_growth:.1f} MB"
    assert figures["tracemalloc_growth_kb"] < 16 * 1024
    assert figures["sockets_last_quarter_max"] <= concurrency + 2
    assert figures["sockets_last_quarter_max"] <= figures["sockets_first_quarter_max"] + concurrency
    assert figures["sockets_end"] == 0  # the client is closed


@pytest.mark.timeout(120)
async def test_short_soak(soak_server: str) -> None:
    total, concurrency = 3_000, 8
    with anyio.fail_after(100):
        figures = await run_soak(soak_server, total, concurrency)
    check(figures, total, concurrency)


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("VENTRYX_SOAK") != "1", reason="set VENTRYX_SOAK=1")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_full_soak(soak_server: str) -> None:
    total, concurrency = 100_000, 16
    with anyio.fail_after(840):
        figures = await run_soak(soak_server, total, concurrency)
    check(figures, total, concurrency)

"""Background delivery benchmarks: what ``enqueue`` adds to a handler, drain speed, flat memory.

(a) handler latency: ``emitter.enqueue`` (in memory, and with the SQLite outbox) vs
    ``await client.events.emit`` in a loop playing a request handler, p50/p99, while the
    emitter delivers in the background; the three sides alternate in rounds;
(b) a drain of N stored events (an outbox file filled beforehand) vs ``emit_many`` of the same
    N events, same concurrency, interleaved;
(c) the outbox file size and the peak RSS of fresh processes enqueueing N and 5*N events
    while the emitter delivers (flat in N: the file holds the backlog, not the history).
Against the canned-response server (``benchmarks/_canned_server.py``), so the client is what
is timed. Run: ``python -m benchmarks.bench_emitter [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._util import API_KEY, canned_server

CONCURRENCY = 8  # the handler-latency emitters
DRAIN_CONCURRENCY = 32


def _transport() -> str:
    """aiohttp when installed (the fast bulk transport), on both sides of a comparison."""
    import importlib.util

    return "aiohttp" if importlib.util.find_spec("aiohttp") else "default"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def _latency(base: str, folder: Path, calls: int, rounds: int) -> dict[str, list[float]]:
    """Per round: p50 and p99 (us) of each side; the sides alternate within every round."""
    from ventryx import AsyncVentryx

    out: dict[str, list[float]] = {}
    async with AsyncVentryx(API_KEY, base_url=base) as client:
        memory = client.events.emitter(concurrency=CONCURRENCY)
        sqlite = client.events.emitter(outbox=folder / "latency.db", concurrency=CONCURRENCY)
        async with memory, sqlite:
            for number in range(rounds):
                order = ["memory", "sqlite", "emit"]
                if number % 2:
                    order.reverse()
                for side in order:
                    samples: list[float] = []
                    for n in range(calls):
                        started = time.perf_counter()
                        if side == "emit":
                            await client.events.emit(type="bench.handler", data={"n": n})
                        else:
                            emitter = memory if side == "memory" else sqlite
                            emitter.enqueue(type="bench.handler", data={"n": n})
                        samples.append((time.perf_counter() - started) * 1e6)
                        await asyncio.sleep(0)  # the handler yields: delivery runs in between
                    out.setdefault(f"p50 {side}", []).append(_pct(samples, 0.50))
                    out.setdefault(f"p99 {side}", []).append(_pct(samples, 0.99))
                await memory.flush()
                await sqlite.flush()
    return out


def _fill(path: Path, count: int) -> None:
    from ventryx._bulk._input import idempotency_key_for
    from ventryx._emitter._store import SQLiteStore

    store = SQLiteStore(path)
    for n in range(count):
        body = json.dumps({"type": "bench.stored", "data": {"n": n}})
        store.add(idempotency_key_for(f"d{n}"), f"d{n}", body, on_full="raise", block=False)
    store.close()


async def _drain_vs_emit_many(base: str, folder: Path, count: int, rounds: int) -> dict[str, Any]:
    from ventryx import AsyncVentryx

    rates: dict[str, list[float]] = {"drain": [], "emit_many": []}
    transport: Any = _transport()
    for number in range(rounds):
        path = folder / f"drain{number}.db"
        _fill(path, count)
        order = ["drain", "emit_many"] if number % 2 == 0 else ["emit_many", "drain"]
        for side in order:
            async with AsyncVentryx(API_KEY, base_url=base) as client:
                started = time.perf_counter()
                if side == "drain":
                    emitter = client.events.emitter(
                        outbox=path, concurrency=DRAIN_CONCURRENCY, transport=transport
                    )
                    async with emitter:
                        assert await emitter.flush()
                else:
                    events = (
                        {"type": "bench.stored", "data": {"n": n}, "key": f"d{n}"}
                        for n in range(count)
                    )
                    summary = await client.events.emit_many(
                        events, concurrency=DRAIN_CONCURRENCY, transport=transport
                    )
                    assert summary.delivered == count
                rates[side].append(count / (time.perf_counter() - started))
    return rates


FLAT = """
import json, os, resource, sys, anyio
from ventryx import AsyncVentryx

base, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    async with AsyncVentryx("{key}", base_url=base) as client:
        async with client.events.emitter(outbox=path, concurrency={c}, transport="{t}") as emitter:
            for n in range(count):
                emitter.enqueue(type="bench.flat", data={{"n": n, "pad": "x" * 100}})
                if n % 500 == 499:  # a steady load the delivery keeps up with
                    await emitter.flush()
            await emitter.flush()
            size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"bytes": size, "rss_mb": rss}}))

anyio.run(main)
"""


def _flat(base: str, folder: Path, sizes: tuple[int, int]) -> dict[int, dict[str, float]]:
    code = FLAT.format(key=API_KEY, c=DRAIN_CONCURRENCY, t=_transport())
    found: dict[int, dict[str, float]] = {}
    for count in sizes:
        path = folder / f"flat{count}.db"
        result = subprocess.run(
            [sys.executable, "-c", code, base, str(path), str(count)],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
        found[count] = json.loads(result.stdout)
    return found


def run(quick: bool = False) -> dict[str, Any]:
    calls, rounds = (300, 2) if quick else (1000, 5)
    drain_n, drain_rounds = (10_000, 2) if quick else (100_000, 3)
    sizes = (5_000, 25_000) if quick else (20_000, 100_000)
    rows: list[dict[str, Any]] = []
    with canned_server() as url, tempfile.TemporaryDirectory() as tmp:
        base = f"{url}/v1"
        folder = Path(tmp)
        lat = asyncio.run(_latency(base, folder, calls, rounds))
        for side, budget in (("memory", 500.0), ("sqlite", 2000.0)):
            label = "in memory" if side == "memory" else "SQLite outbox"
            rows.append(
                {
                    "name": f"handler latency: enqueue ({label}) vs await emit, {calls} calls"
                    f" x {rounds} rounds",
                    "measured": {
                        "p50/us enqueue": _stat(lat[f"p50 {side}"]),
                        "p99/us enqueue": _stat(lat[f"p99 {side}"]),
                        "p50/us emit": _stat(lat["p50 emit"]),
                        "p99/us emit": _stat(lat["p99 emit"]),
                    },
                    "ratio": _stat([v / budget for v in lat[f"p99 {side}"]]),
                    "ratio_label": f"p99 enqueue / {budget / 1000:g} ms budget",
                    "target": 1.0,
                }
            )
            speedup = [e / q for e, q in zip(lat["p50 emit"], lat[f"p50 {side}"], strict=True)]
            rows.append(
                {
                    "name": f"handler latency: await emit / enqueue ({label}), p50",
                    "measured": {"p50/us enqueue": _stat(lat[f"p50 {side}"])},
                    "ratio": _stat(speedup),
                    "ratio_label": "emit p50 / enqueue p50",
                }
            )
        rates = asyncio.run(_drain_vs_emit_many(base, folder, drain_n, drain_rounds))
        rows.append(
            {
                "name": f"drain of {drain_n:,} stored events vs emit_many of the same, "
                f"c={DRAIN_CONCURRENCY}, {_transport()} transport, "
                f"{drain_rounds} interleaved rounds",
                "measured": {
                    "events/s drain": _stat(rates["drain"]),
                    "events/s emit_many": _stat(rates["emit_many"]),
                },
                "ratio": _stat(
                    [d / e for d, e in zip(rates["drain"], rates["emit_many"], strict=True)]
                ),
                "ratio_label": "drain / emit_many",
                "target": 0.9,
                "at_least": True,
            }
        )
        flat = _flat(base, folder, sizes)
        small, big = sizes
        rows.append(
            {
                "name": f"outbox file and peak RSS, {big:,} vs {small:,} events enqueued while"
                " delivering",
                "measured": {
                    f"KB {small:,}": flat[small]["bytes"] / 1024,
                    f"KB {big:,}": flat[big]["bytes"] / 1024,
                    f"RSS-MB {small:,}": flat[small]["rss_mb"],
                    f"RSS-MB {big:,}": flat[big]["rss_mb"],
                },
                "ratio": max(
                    flat[big]["bytes"] / flat[small]["bytes"],
                    flat[big]["rss_mb"] / flat[small]["rss_mb"],
                ),
                "ratio_label": "larger of file and RSS growth (flat = 1)",
                "target": 1.1,
            }
        )
    return {"rows": rows}


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    for row in result["rows"]:
        print(json.dumps(row))

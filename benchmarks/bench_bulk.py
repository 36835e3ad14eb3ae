"""Bulk emission benchmarks: rate-limit tracking, throughput vs raw clients, flat memory.

(a) a server limited to R = 500/s (burst 25): delivered rate / R and the 429 share of attempts,
    over several runs;
(b) no limit, concurrency 64, against the canned-response server
    (``benchmarks/_canned_server.py``, so the client is what is timed): emit_many with the
    aiohttp transport vs a hand-written raw aiohttp loop, and emit_many with the default httpx
    transport vs a raw httpx task-group loop; the four run interleaved, several rounds;
(c) peak RSS of fresh processes emitting N and 10*N generated events (once each).
The servers run in separate processes (``python -m ventryx.testing`` for (a) and (c)). Run:
``python -m benchmarks.bench_bulk [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEST_KEY = "vx_test_local_key"
RATE = 500  # requests/s the rate-limited server admits
CONCURRENCY = 64


@contextmanager
def server(*args: str) -> Iterator[str]:
    """A local server in its own process; yields its base URL."""
    cmd = [sys.executable, "-m", "ventryx.testing", "--port", "0", "--no-record", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def canned_server() -> Iterator[str]:
    """The canned-response server (``benchmarks/_canned_server.py``): the client is measured."""
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks._canned_server"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise RuntimeError(f"canned server did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


def events(n: int | None) -> Iterator[dict[str, Any]]:
    i = 0
    while n is None or i < n:
        yield {"type": "bench.bulk", "data": {"i": i}}
        i += 1


async def _emit_for(base_url: str, seconds: float, concurrency: int, transport: str) -> Any:
    import anyio

    from ventryx import AsyncVentryx

    async with AsyncVentryx(api_key=TEST_KEY, base_url=base_url, max_retries=5) as client:
        with anyio.move_on_after(seconds):
            from ventryx._bulk._results import BulkSummary

            summary = BulkSummary()
            await client.events.emit_many(
                events(None),
                concurrency=concurrency,
                transport=transport,  # type: ignore[arg-type]
                summary=summary,
                cancel_grace=1.0,
            )
        return summary


def rate_limited(seconds: float) -> dict[str, float]:
    with server("--rate-limit", str(RATE), "--burst", "25") as url:
        s = asyncio.run(_emit_for(url, seconds, 32, "aiohttp"))
    elapsed = s.elapsed or seconds
    return {
        "delivered_per_s": s.delivered / elapsed,
        "share_429": s.rate_limited / max(s.attempts, 1),
        "attempts": s.attempts,
    }


async def _raw_aiohttp(base_url: str, seconds: float, concurrency: int) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                body = json.dumps({"type": "bench.raw", "data": {"w": w, "i": i}})
                hdrs = {**headers, "Idempotency-Key": f"raw-{w}-{i}"}
                async with session.post(f"{base_url}/events", data=body, headers=hdrs) as r:
                    await r.read()
                    if r.status < 300:
                        done += 1
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done / (time.perf_counter() - started)


async def _raw_httpx(base_url: str, seconds: float, concurrency: int) -> float:
    """The hand-written httpx loop: an anyio task group of workers on one AsyncClient."""
    import anyio
    import httpx

    done = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:

        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                body = json.dumps({"type": "bench.raw", "data": {"w": w, "i": i}})
                r = await client.post(
                    "/events", content=body, headers={"Idempotency-Key": f"raw-{w}-{i}"}
                )
                if r.status_code < 300:
                    done += 1
                i += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(concurrency):
                tg.start_soon(worker, w)
        return done / (time.perf_counter() - started)


def throughput(
    seconds: float, rounds: int, concurrency: int = CONCURRENCY
) -> dict[str, list[float]]:
    """Requests/s of each side, ``rounds`` times, interleaved in a rotating order."""
    sides = ("raw_aiohttp", "emit_many_aiohttp", "raw_httpx", "emit_many_default")
    rates: dict[str, list[float]] = {side: [] for side in sides}
    with canned_server() as url:

        def measure(side: str) -> float:
            if side == "raw_aiohttp":
                return asyncio.run(_raw_aiohttp(url, seconds, concurrency))
            if side == "raw_httpx":
                return asyncio.run(_raw_httpx(url, seconds, concurrency))
            transport = "aiohttp" if side == "emit_many_aiohttp" else "default"
            summary = asyncio.run(_emit_for(url, seconds, concurrency, transport))
            return float(summary.delivered / summary.elapsed)

        measure("raw_aiohttp")  # warm-up: imports, the server's first connections
        for i in range(rounds):
            order = sides[i % len(sides) :] + sides[: i % len(sides)]
            for side in order:
                rates[side].append(measure(side))
    return rates


_RSS_CHILD = """
import anyio, psutil, sys, threading, time
from ventryx import AsyncVentryx
peak = 0
def watch():
    global peak
    p = psutil.Process()
    while True:
        peak = max(peak, p.memory_info().rss); time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
def gen(n):
    for i in range(n):
        yield {"type": "bench.rss", "data": {"i": i}}
async def main():
    async with AsyncVentryx(api_key=sys.argv[2], base_url=sys.argv[3]) as c:
        s = await c.events.emit_many(gen(int(sys.argv[1])), concurrency=64, transport="aiohttp")
    assert s.delivered == int(sys.argv[1]), s
anyio.run(main)
time.sleep(0.1)
print(peak)
"""


def peak_rss(sizes: tuple[int, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    with server() as url:
        for n in sizes:
            proc = subprocess.run(
                [sys.executable, "-c", _RSS_CHILD, str(n), TEST_KEY, url],
                capture_output=True,
                text=True,
                check=True,
            )
            out[f"peak_rss_mb_{n}"] = int(proc.stdout.strip().splitlines()[-1]) / 2**20
    return out


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True) if y]


def run(quick: bool = False) -> dict[str, Any]:
    """The measurements, as table rows (``benchmarks._external`` reads ``rows``)."""
    rl_runs, rl_seconds = (2, 4.0) if quick else (3, 10.0)
    tp_rounds, tp_seconds = (2, 2.0) if quick else (3, 5.0)
    sizes = (20_000, 100_000) if quick else (100_000, 1_000_000)

    limited = [rate_limited(rl_seconds) for _ in range(rl_runs)]
    delivered = [r["delivered_per_s"] for r in limited]
    share = [r["share_429"] for r in limited]
    rates = throughput(tp_seconds, tp_rounds)
    rss = peak_rss(sizes)
    small, big = (rss[f"peak_rss_mb_{n}"] for n in sizes)
    limit = f"R = {RATE}/s, {rl_runs} runs of {rl_seconds:.0f} s"
    c64 = f"c={CONCURRENCY}, {tp_rounds} interleaved rounds of {tp_seconds:.0f} s"
    rows: list[dict[str, Any]] = [
        {
            "name": f"rate-limited server, {limit}",
            "measured": {"delivered/s emit_many": _stat(delivered)},
            "ratio": _stat([d / RATE for d in delivered]),
            "ratio_label": "delivered / R",
            "target": 0.95,
            "at_least": True,
        },
        {
            "name": f"rate-limited server, {limit}",
            "measured": {"attempts emit_many": _stat([r["attempts"] for r in limited])},
            "ratio": _stat(share),
            "ratio_label": "429s / attempts",
            "ratio_unit": "",
            "target": 0.05,
        },
        {
            "name": f"throughput {c64}, aiohttp transport",
            "measured": {
                "req/s emit_many+aiohttp": _stat(rates["emit_many_aiohttp"]),
                "req/s raw aiohttp": _stat(rates["raw_aiohttp"]),
            },
            "ratio": _stat(_ratios(rates["emit_many_aiohttp"], rates["raw_aiohttp"])),
            "ratio_label": "emit_many / raw aiohttp",
            "target": 0.5,
            "at_least": True,
        },
        {
            "name": f"throughput {c64}, default transport",
            "measured": {
                "req/s emit_many": _stat(rates["emit_many_default"]),
                "req/s raw httpx task group": _stat(rates["raw_httpx"]),
            },
            "ratio": _stat(_ratios(rates["emit_many_default"], rates["raw_httpx"])),
            "ratio_label": "emit_many / raw httpx",
        },
        {
            "name": f"peak RSS, {sizes[1]:,} vs {sizes[0]:,} generated events",
            "measured": {f"MB {n:,}": rss[f"peak_rss_mb_{n}"] for n in sizes},
            "ratio": big / small,
            "ratio_label": "RSS ratio (flat = 1)",
            "target": 1.1,
        },
        {
            "name": f"peak RSS, {sizes[1]:,} events vs a 150 MB budget",
            "measured": {f"MB {sizes[1]:,}": big},
            "ratio": big / 150,
            "ratio_label": "of 150 MB",
            "target": 1.0,
        },
    ]
    return {"rows": rows}


if __name__ == "__main__":
    from benchmarks._external import external_rows
    from benchmarks._util import render_table

    print(render_table(external_rows("bulk", run(quick="--quick" in sys.argv))))

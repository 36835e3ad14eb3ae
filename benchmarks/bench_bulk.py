"""Bulk emission benchmarks: rate-limit tracking, throughput vs raw aiohttp, flat memory.

(a) a server limited to 500/s (burst 25): delivered rate / 500 and the 429 share of attempts;
(b) no limit, concurrency 64: emit_many (default and aiohttp transports) vs a raw aiohttp loop,
    against the canned-response server (``benchmarks/_canned_server.py``): the client is timed;
(c) peak RSS of fresh processes emitting N and 10*N generated events.
The servers run in separate processes (``python -m ventryx.testing`` for (a) and (c)). Run:
``python benchmarks/bench_bulk.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEST_KEY = "vx_test_local_key"


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
            from ventryx._bulk import BulkSummary

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
    with server("--rate-limit", "500", "--burst", "25") as url:
        s = asyncio.run(_emit_for(url, seconds, 32, "aiohttp"))
    elapsed = s.elapsed or seconds
    return {
        "delivered_per_s": s.delivered / elapsed,
        "delivered_over_limit": s.delivered / elapsed / 500,
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


def throughput(seconds: float, concurrency: int = 64) -> dict[str, float]:
    with canned_server() as url:
        raw = asyncio.run(_raw_aiohttp(url, seconds, concurrency))
        fast = asyncio.run(_emit_for(url, seconds, concurrency, "aiohttp"))
        default = asyncio.run(_emit_for(url, seconds, concurrency, "default"))
    fast_rate = fast.delivered / fast.elapsed
    default_rate = default.delivered / default.elapsed
    return {
        "raw_aiohttp_per_s": raw,
        "emit_many_aiohttp_per_s": fast_rate,
        "emit_many_default_per_s": default_rate,
        "ratio_aiohttp": fast_rate / raw,
        "ratio_default": default_rate / raw,
    }


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


def run(quick: bool = False) -> dict[str, Any]:
    """All three measurements as one flat dict."""
    seconds = 4.0 if quick else 10.0
    results: dict[str, Any] = {}
    results.update({f"a_{k}": v for k, v in rate_limited(seconds).items()})
    results.update({f"b_{k}": v for k, v in throughput(3.0 if quick else 8.0).items()})
    sizes = (20_000, 100_000) if quick else (100_000, 1_000_000)
    results.update({f"c_{k}": v for k, v in peak_rss(sizes).items()})
    return results


if __name__ == "__main__":
    for key, value in run(quick="--quick" in sys.argv).items():
        print(f"{key:32} {value:,.3f}" if isinstance(value, float) else f"{key:32} {value}")

"""Throughput of the local server: POST /v1/events at concurrency 64 from an aiohttp client.

The server runs in its own process (``python -m ventryx.testing --port 0 --no-record``); the
reported figure is the median requests/s of three runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time

CONCURRENCY = 64
API_KEY = "vx_test_local_key"


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ventryx.testing", "--port", "0", "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if match is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the server did not print its URL: {line!r}")
    return proc, match.group(1).rstrip("/")


def _stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def _drive(base_url: str, seconds: float) -> float:
    import aiohttp

    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    done = 0
    failed = 0
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker(wid: int, deadline: float) -> None:
            nonlocal done, failed
            n = 0
            while time.perf_counter() < deadline:
                body = b'{"type":"bench.tick","data":{"w":%d,"n":%d}}' % (wid, n)
                n += 1
                async with session.post(f"{base_url}/events", data=body) as resp:
                    await resp.read()
                    if resp.status == 201:
                        done += 1
                    else:
                        failed += 1

        # warm up the connections, then measure
        await asyncio.gather(*(worker(i, time.perf_counter() + 0.3) for i in range(CONCURRENCY)))
        done = failed = 0
        start = time.perf_counter()
        await asyncio.gather(*(worker(i, start + seconds) for i in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    if failed:
        raise RuntimeError(f"{failed} requests failed during the benchmark")
    return done / elapsed


def _cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by process ``pid`` (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(quick: bool = False) -> dict[str, float]:
    """Median requests/s of three runs of POST /v1/events against a server subprocess.

    The client shares the machine with the server, so the rate is often client-bound; the
    server's CPU share (when psutil is installed) tells how much headroom the server had.
    """
    seconds = 1.0 if quick else 4.0
    proc, base_url = _start_server()
    rates: list[float] = []
    cpu_shares: list[float] = []
    try:
        for _ in range(3):
            cpu_before, start = _cpu_seconds(proc.pid), time.perf_counter()
            rates.append(asyncio.run(_drive(base_url, seconds)))
            cpu_after, elapsed = _cpu_seconds(proc.pid), time.perf_counter() - start
            if cpu_before is not None and cpu_after is not None:
                cpu_shares.append((cpu_after - cpu_before) / elapsed)
    finally:
        _stop_server(proc)
    result = {
        "server_post_events_rps": statistics.median(rates),
        "server_post_events_rps_min": min(rates),
        "server_post_events_rps_max": max(rates),
    }
    if cpu_shares:
        share = statistics.median(cpu_shares)
        result["server_cpu_percent"] = 100 * share
        # requests/s one fully busy core of the server would sustain at this cost per request
        result["server_capacity_rps_estimate"] = result["server_post_events_rps"] / max(share, 1e-9)
    return result


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv).items():
        print(f"{name}: {value:,.0f}")

"""One limit, many processes: K clients emitting against one server limited to R, with a
``RedisRateGate`` shared through one local ``redis-server`` and with each its own gate.

K = 2, 4 and 8 processes (each its own ``AsyncVentryx``, ``emit_many`` at c=16 for T seconds,
all started together), and K = 4 as two simulated hosts (two processes with their clocks an hour
ahead); the independent and the shared runs alternate, in one run. Each process sends one
request before the start (its first request runs cold code, which is no gate's doing) and the
server's bucket refills before all start together. Per row: total delivered / R,
the 429 share of attempts, Jain's fairness index over the processes' delivered counts, and (for
the shared gate) the median time of one admission's Redis call in the processes.
Run: ``python -m benchmarks.bench_redis_gate [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from benchmarks._util import render_table, server_process

RATE = float(os.environ.get("BENCH_REDIS_R", "100"))  # requests/s the server admits
BURST = int(RATE // 20)
CONCURRENCY = 16
KS = tuple(int(k) for k in os.environ.get("BENCH_REDIS_KS", "2,4,8").split(","))
SKEW = 3600.0  # the second "host" is this many seconds ahead
SPORADIC = (0.05, 0.2)  # shares of requests refused whatever the rate, against none


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        proc = subprocess.Popen(
            [*args, "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            proc.wait()


def _worker(spec: dict[str, Any]) -> None:
    """One client process: ready, wait for go, emit for ``seconds``, print its tally."""
    offset = float(spec["offset"])
    if offset:  # a host whose clocks are off (the gate must not care)
        wall, mono = time.time, time.monotonic
        time.time = lambda: wall() + offset
        time.monotonic = lambda: mono() + offset

    import anyio

    # Everything the run loads on first use, loaded before the start: what is measured is the
    # run, not eight processes importing at once on two cores.
    import ventryx._bulk._engine
    import ventryx._converter
    import ventryx.models  # noqa: F401
    from ventryx import AsyncVentryx, RedisRateGate
    from ventryx._bulk._results import BulkSummary

    gate = None
    calls: list[float] = []
    if spec["redis"]:
        gate = RedisRateGate(spec["redis"], key=spec["key"])
        measured = gate._call_async

        async def timed(take: int, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await measured(take, *args, **kwargs)
            finally:  # one call takes `take` slots (the waiting workers' at once)
                calls.append((time.perf_counter() - started) / max(take, 1))

        gate._call_async = timed  # type: ignore[method-assign]

    def events() -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            yield {"type": "bench.redis", "data": {"p": spec["tag"], "i": i}}
            i += 1

    summary = BulkSummary()

    async def warm_up() -> None:
        # One request through a client of its own: the first request of a process runs cold
        # code (seconds on a loaded machine), which is start-up, not what the gate does.
        async with AsyncVentryx(
            api_key="vx_test_local_key", base_url=spec["url"], max_retries=20
        ) as client:
            await client.events.emit(type="bench.warmup", data={})

    async def main() -> None:
        async with AsyncVentryx(
            api_key="vx_test_local_key", base_url=spec["url"], max_retries=5, rate_gate=gate
        ) as client:
            with anyio.move_on_after(spec["seconds"]):
                await client.events.emit_many(
                    events(),
                    concurrency=CONCURRENCY,
                    summary=summary,
                    cancel_grace=0.5,
                    max_rate_limit_wait=600.0,
                )

    anyio.run(warm_up)
    print("ready", flush=True)
    sys.stdin.readline()
    anyio.run(main)
    print(
        json.dumps(
            {
                "delivered": summary.delivered,
                "attempts": summary.attempts,
                "rate_limited": summary.rate_limited,
                "call_ms": statistics.median(calls) * 1000 if calls else None,
                "calls": len(calls),
                "errors": gate.errors if gate is not None else 0,
            }
        ),
        flush=True,
    )


def _round(url: str, redis: str | None, offsets: Sequence[float], seconds: float) -> dict[str, Any]:
    """K processes started together against one server; their tallies and the totals."""
    key = f"ventryx:bench:{uuid.uuid4().hex}"
    procs = []
    for i, offset in enumerate(offsets):
        spec = {"url": url, "redis": redis, "key": key, "offset": offset, "seconds": seconds}
        spec["tag"] = i
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_redis_gate", "--worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker did not start")
    time.sleep(1.0)  # the limiter's bucket refills while the workers start: all start equal
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    tallies = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        tallies.append(json.loads(out.strip().splitlines()[-1]))
    delivered = [t["delivered"] for t in tallies]
    attempts = sum(t["attempts"] for t in tallies)
    total = sum(delivered)
    squares = sum(d * d for d in delivered)
    call_ms = sorted(t["call_ms"] for t in tallies if t["call_ms"] is not None)
    return {
        "delivered_ratio": total / (RATE * seconds + BURST),
        "share_429": sum(t["rate_limited"] for t in tallies) / max(attempts, 1),
        "fairness": total * total / (len(delivered) * squares) if squares else 0.0,
        "call_ms": call_ms[len(call_ms) // 2] if call_ms else None,
        "errors": sum(t["errors"] for t in tallies),
        "answers_per_s": attempts / seconds,
    }


def _admission_cost(redis: str, count: int) -> dict[str, float]:
    """Median ms of one admission, one worker, no HTTP: the shared gate and the local one."""

    import anyio

    from ventryx import RedisRateGate
    from ventryx._bulk._gate import RateGate

    async def measure() -> dict[str, float]:
        shared = RedisRateGate(redis, key=f"ventryx:bench:{uuid.uuid4().hex}")
        local = RateGate()
        first = await shared.admit()
        assert first is not None
        await anyio.sleep(2.5)  # past the new key's slow start
        times: dict[str, list[float]] = {"shared": [], "local": []}
        for _ in range(count):
            for name, gate in (("shared", shared), ("local", local)):
                started = time.perf_counter()
                ticket = gate.admit_now() or await gate.admit()
                times[name].append((time.perf_counter() - started) * 1000)
                assert ticket is not None
                gate.on_answer(ticket)
        await shared.aclose()
        return {name: statistics.median(values) for name, values in times.items()}

    return anyio.run(measure)


def _median(values: Sequence[float]) -> dict[str, float]:

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _sporadic_rounds(
    redis: str, rounds: int, seconds: float
) -> dict[tuple[float, bool], list[float]]:
    """Answers per second of K = 2 processes against 429s that come whatever the rate (and
    against none), own gates and the shared one side by side: (p, shared) -> per round."""
    answers: dict[tuple[float, bool], list[float]] = {}
    for _ in range(rounds):
        for p in (0.0, *SPORADIC):
            options = ["--limiter", "sporadic", "--sporadic", str(p), "--sporadic-wait", "0.001"]
            with server_process(
                ["-m", "ventryx.testing", "--port", "0", "--no-record", *options]
            ) as url:
                for shared in (False, True):
                    res = _round(url, redis if shared else None, [0.0, 0.0], seconds)
                    answers.setdefault((p, shared), []).append(res["answers_per_s"])
    return answers


def run(quick: bool = False) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        why = "redis-server is not installed (.ci/install-redis installs it)"
        return {"rows": [{"name": "benchmark", "status": "unavailable", "note": why}]}
    seconds, rounds = (3.0, 1) if quick else (8.0, 2)
    cases = [(f"K = {k} processes", [0.0] * k) for k in KS]
    cases.append(("K = 4, 2 hosts, clocks 1 h apart", [0.0, 0.0, SKEW, SKEW]))
    results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    limit = ["--rate-limit", str(RATE), "--burst", str(BURST)]
    with (
        redis_server() as redis,
        server_process(["-m", "ventryx.testing", "--port", "0", "--no-record", *limit]) as url,
    ):
        costs = [_admission_cost(redis, 300 if quick else 2000) for _ in range(rounds)]
        for _ in range(rounds):
            for name, offsets in cases:
                for shared in (False, True):  # side by side: independent, then shared
                    res = _round(url, redis if shared else None, offsets, seconds)
                    results.setdefault((name, shared), []).append(res)
                    time.sleep(0.5)
        answers = _sporadic_rounds(redis, rounds, seconds)
    rows: list[dict[str, Any]] = []
    window = f"R = {RATE:.0f}/s, c={CONCURRENCY} each, {rounds} x {seconds:.0f} s"
    for name, _ in cases:
        own, shared = results[(name, False)], results[(name, True)]
        calls = [r["call_ms"] for r in shared if r["call_ms"] is not None]
        for label, short, key, target, at_least in (
            ("delivered / R", "delivered/R", "delivered_ratio", 0.95, True),
            ("429s / attempts", "429-share", "share_429", 0.02, False),
            ("Jain's fairness", "fairness", "fairness", 0.95, True),
        ):
            rows.append(
                {
                    "name": f"shared gate, {name}, {window}: {label}",
                    "measured": {
                        f"{short} own-gates": _median([r[key] for r in own]),
                        f"{short} shared-gate": _median([r[key] for r in shared]),
                    },
                    "ratio": _median([r[key] for r in shared]),
                    "ratio_label": label + " (shared)",
                    "ratio_unit": "",
                    "target": target,
                    "at_least": at_least,
                }
            )
        if calls:
            rows.append(
                {
                    "name": f"shared gate, {name}: Redis time per admission, in the run",
                    "measured": {"ms median of the processes' medians": _median(calls)},
                    "ratio": _median(calls),
                    "ratio_label": "ms per admission (loaded)",
                    "ratio_unit": "",
                    "note": f"{sum(r['errors'] for r in shared)} Redis errors",
                }
            )
    for p in SPORADIC:
        vs_none = {
            side: statistics.median(answers[(p, shared)])
            / statistics.median(answers[(0.0, shared)])
            for side, shared in (("own-gates", False), ("shared-gate", True))
        }
        rows.append(
            {
                "name": (
                    f"shared gate, K = 2 processes, {p:.0%} of requests refused at random "
                    f"(no rate limit), c={CONCURRENCY} each, {rounds} x {seconds:.0f} s: "
                    "answers/s vs none"
                ),
                "measured": {f"x {side}": {"median": v} for side, v in vs_none.items()},
                "ratio": {"median": vs_none["shared-gate"]},
                "ratio_label": "x the answers/s without them (shared)",
                "ratio_unit": "",
                "target": 0.9,
                "at_least": True,
            }
        )
    rows.append(
        {
            "name": "admission alone (one worker, no HTTP), interleaved with the local gate",
            "measured": {
                "ms shared gate": _median([c["shared"] for c in costs]),
                "ms local gate": _median([c["local"] for c in costs]),
            },
            "ratio": _median([c["shared"] for c in costs]),
            "ratio_label": "ms per admission (shared)",
            "ratio_unit": "",
            "target": 0.3,
        }
    )
    return {"rows": rows}


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["--worker"]:
        _worker(json.loads(argv[1]))
        return
    from benchmarks._external import external_rows

    rows = external_rows("redis", run(quick="--quick" in argv))
    print(render_table(rows, markdown="--markdown" in argv))


if __name__ == "__main__":
    main(sys.argv[1:])

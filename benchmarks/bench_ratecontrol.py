"""``python -m benchmarks.bench_ratecontrol [--quick]``: bulk rate control over real HTTP.

Each cell of the matrix (limiter shape x Retry-After form) runs the local server in its own
process with that limiter and sends the same events twice, interleaved on fresh servers:
``emit_many`` (c=64, default transport) and the naive peer a user writes (an
``anyio.Semaphore(64)`` and a tenacity retry that honours Retry-After). Figures per side:
delivered per second over the run and its ratio to the limiter's capacity, the 429 share of
attempts and whether the server's ledger holds every event exactly once. The K rows run K
processes (each its own client, so its own gate) against one limit: total delivered over R,
429 share, and Jain's fairness index of the per-process rates.

Writes ``benchmarks/results/RATECONTROL.md`` (the table) and prints it. The machine may be
loaded: read the side-by-side ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx

from benchmarks._util import API_KEY, server_process

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 64
RATE = 50.0

# (label, server options, capacity in requests per second or None for "no limit")
SHAPES: list[tuple[str, list[str], float | None]] = [
    ("token bucket R=50 burst 1", ["--rate-limit", "50", "--burst", "1"], RATE),
    ("token bucket R=50 burst 25", ["--rate-limit", "50", "--burst", "25"], RATE),
    ("fixed window 50 per 1 s", ["--limiter", "fixed_window", "--rate-limit", "50"], RATE),
    ("sliding window 50 per 1 s", ["--limiter", "sliding_window", "--rate-limit", "50"], RATE),
    (
        "concurrency 2 in service x 40 ms",
        ["--limiter", "concurrency", "--max-in-service", "2", "--latency", "0.04"],
        50.0,
    ),
]
SPORADIC = [0.05, 0.2]
SPORADIC_EVENTS = 3000  # a few seconds of an unlimited server: less would time noise
SPORADIC_REPEATS = 3  # runs with and without 429s alternated; the medians are compared
K_BURSTS = (1, 25)
FORMS_FULL = ["fractional", "seconds", "http-date", "milliseconds", "absent"]
FORMS_QUICK = ["fractional", "seconds"]


def _ledger(base: str) -> dict[str, Any]:  # (after the run, from outside the event loop)
    data: dict[str, Any] = httpx.get(base + "/_testing/ledger", timeout=10).json()["data"]
    return data


def _events(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"type": "bench.rc", "data": {"run": tag, "i": i}, "key": f"{tag}-{i}"} for i in range(n)
    ]


async def _ours(base: str, n: int, tag: str) -> float:
    from ventryx import AsyncVentryx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = AsyncVentryx(api_key=API_KEY, base_url=base)
    async with client:
        started = time.perf_counter()
        summary = await client.events.emit_many(_events(n, tag), concurrency=CONCURRENCY)
        elapsed = time.perf_counter() - started
    if summary.delivered != n:
        raise RuntimeError(f"emit_many delivered {summary.delivered} of {n}")
    return elapsed


async def _peer(base: str, n: int, tag: str) -> float:
    """What a user writes: a semaphore, and tenacity retrying 429s after their Retry-After."""
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_delay,
        wait_exponential,
    )

    from ventryx._retry import parse_retry_after

    class Limited(Exception):
        def __init__(self, wait: float | None) -> None:
            self.wait = wait

    def wait(state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Limited) and exc.wait is not None:
            return min(exc.wait, 60.0)
        return float(wait_exponential(multiplier=0.05, max=2.0)(state))

    semaphore = anyio.Semaphore(CONCURRENCY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:

        async def one(event: dict[str, Any]) -> None:
            async with semaphore:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception(lambda e: isinstance(e, Limited)),
                    wait=wait,
                    stop=stop_after_delay(300),
                    reraise=True,
                ):
                    with attempt:
                        body = {"type": event["type"], "data": event["data"]}
                        key = {"Idempotency-Key": event["key"]}
                        response = await http.post("/events", json=body, headers=key)
                        if response.status_code == 429:
                            raise Limited(parse_retry_after(response.headers))
                        response.raise_for_status()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for event in _events(n, tag):
                tg.start_soon(one, event)
        return time.perf_counter() - started


def _post_attempts(ledger: dict[str, Any]) -> int:
    return sum(v for k, v in ledger["attempts"].items() if k.startswith("POST"))


async def _measured(side: str, url: str, n: int, learn: float) -> dict[str, Any]:
    """Run one side on a fresh server; its ledger read after ``learn`` seconds and at the
    end, so the part after learning is measured the same way for both sides."""
    run = _ours if side == "ours" else _peer
    base = url.removesuffix("/v1")
    marks: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10) as admin:

        async def ledger() -> dict[str, Any]:
            data: dict[str, Any] = (await admin.get(base + "/_testing/ledger")).json()["data"]
            return data

        async def sample() -> None:
            await anyio.sleep(learn)
            marks["at"], marks["ledger"] = time.perf_counter(), await ledger()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            elapsed = await run(url, n, side)
            ended = time.perf_counter()
            tg.cancel_scope.cancel()
        final = await ledger()
    attempts = _post_attempts(final)
    cell: dict[str, Any] = {
        "rate": n / elapsed,
        "answers": attempts / elapsed,
        "share": final["rate_limited"] / max(attempts, 1),
        "exact": final["event_count"] == n and final["duplicates"] == 0,
        "steady": None,
    }
    if "ledger" in marks and ended - marks["at"] > 1.0:
        first = marks["ledger"]
        tried = attempts - _post_attempts(first)
        cell["steady"] = {
            "rate": (final["event_count"] - first["event_count"]) / (ended - marks["at"]),
            "share": (final["rate_limited"] - first["rate_limited"]) / max(tried, 1),
        }
    return cell


def _cell(options: list[str], n: int, side: str, learn: float = math.inf) -> dict[str, Any]:
    with server_process(["-m", "ventryx.testing", "--port", "0", "--no-record", *options]) as url:
        return anyio.run(_measured, side, url, n, learn)


def _sporadic(p: float, side: str) -> dict[str, Any]:
    """One side on sporadic 429s at ``p`` against its own runs without them, alternated (the
    drift of a shared machine hits both alike), by the median of answers per second: a 429
    answered costs the server a round trip as an admission does, so at p=20% even a perfect
    client delivers 0.8x; answers per second is what rate control can keep or lose."""
    none = ["--limiter", "sporadic", "--sporadic", "0"]
    options = ["--limiter", "sporadic", "--sporadic", str(p), "--sporadic-wait", "0.001"]
    without, with_ = [], []
    for _ in range(SPORADIC_REPEATS):
        without.append(_cell(none, SPORADIC_EVENTS, side))
        with_.append(_cell(options, SPORADIC_EVENTS, side))
    with_.sort(key=lambda cell: cell["answers"])
    cell = with_[len(with_) // 2]
    cell["exact"] = all(run["exact"] for run in with_ + without)
    cell["vs_none"] = cell["answers"] / statistics.median(run["answers"] for run in without)
    cell["runs"] = [run["answers"] for run in with_], [run["answers"] for run in without]
    return cell


def _process(url: str, n: int, tag: str, queues: tuple[Any, Any, Any]) -> None:
    ready, go, out = queues
    import ventryx  # noqa: F401  (imported before the start, as a running worker has it)

    ready.put(tag)
    go.wait()
    elapsed = anyio.run(_ours, url, n, tag)
    out.put((tag, n / elapsed, elapsed))


def _k_processes(k: int, n: int, burst: int) -> dict[str, Any]:
    """K processes, each its own client (its own gate), released together once all of them
    have imported the SDK: process start-up is no part of the figures."""
    options = ["--rate-limit", str(RATE), "--burst", str(burst)]
    spawn = multiprocessing.get_context("spawn")
    with server_process(["-m", "ventryx.testing", "--port", "0", "--no-record", *options]) as url:
        ready: Any = spawn.Queue()
        out: Any = spawn.Queue()
        go = spawn.Event()
        each = n // k
        procs = [
            spawn.Process(target=_process, args=(url, each, f"p{i}", (ready, go, out)))
            for i in range(k)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        results = [out.get(timeout=900) for _ in procs]
        for proc in procs:
            proc.join()
        ledger = _ledger(url.removesuffix("/v1"))
    rates = [rate for _, rate, _ in results]
    slowest = max(elapsed for _, _, elapsed in results)
    jain = sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates))
    return {
        "burst": burst,
        "total": each * k / slowest,
        "share": ledger["rate_limited"] / max(_post_attempts(ledger), 1),
        "jain": jain,
        "exact": ledger["event_count"] == each * k and ledger["duplicates"] == 0,
    }


def run(quick: bool) -> dict[str, Any]:
    seconds = 6.0 if quick else 15.0
    learn = seconds / 3  # the part after this is the "after learning" figure
    forms = FORMS_QUICK if quick else FORMS_FULL
    rows: list[dict[str, Any]] = []
    shapes = SHAPES[1:3] if quick else SHAPES
    for label, options, capacity in shapes:
        for form in forms:
            n = int((capacity or RATE) * seconds)
            cell = {"shape": label, "form": form, "capacity": capacity}
            for side in ("ours", "peer"):  # interleaved, each on a fresh server
                cell[side] = _cell([*options, "--retry-after", form], n, side, learn)
            rows.append(cell)
            _log(cell)
    for p in SPORADIC[:1] if quick else SPORADIC:
        cell = {"shape": f"sporadic 429s p={p:.0%}", "form": "fractional", "capacity": None}
        for side in ("ours", "peer"):
            cell[side] = _sporadic(p, side)
        rows.append(cell)
        _log(cell)
    kprocs = []
    for burst in K_BURSTS:
        for k in (2, 4) if quick else (2, 4, 8):
            result = _k_processes(k, int(RATE * seconds * 2), burst)
            result["k"] = k
            kprocs.append(result)
            _log(result)
    report = {"rows": rows, "k": kprocs, "quick": quick, "learn": learn}
    (RESULTS / "ratecontrol.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (RESULTS / "RATECONTROL.md").write_text(table)
    print(table)
    splice(table)
    return report


BEGIN, END = "<!-- ratecontrol:begin -->", "<!-- ratecontrol:end -->"


def splice(table: str) -> None:
    """Put the table at the end of PERFORMANCE.md and of the README's Performance section."""
    performance = RESULTS / "PERFORMANCE.md"
    if performance.exists():
        text = performance.read_text()
        if BEGIN in text:
            text = text[: text.index(BEGIN)].rstrip("\n") + "\n"
        performance.write_text(f"{text}\n{BEGIN}\n{table}{END}\n")
    readme = Path(__file__).parent.parent / "README.md"
    text = readme.read_text()
    end = text.find("<!-- performance:end -->")
    if end < 0:
        return
    start = text.find("### Rate control", 0, end)
    head = (text[:start] if start >= 0 else text[:end]).rstrip("\n") + "\n"
    readme.write_text(f"{head}\n{table}{text[end:]}")


def _log(item: object) -> None:
    print(f"[ratecontrol] {item}", file=sys.stderr, flush=True)


def _side(cell: dict[str, Any], capacity: float | None) -> str:
    rate = cell["rate"]
    head = f"{rate / capacity:.2f} R" if capacity else f"{cell['vs_none']:.2f}x none"
    exact = "" if cell["exact"] else ", LEDGER MISMATCH"
    text = f"{head}, {cell['share']:.1%} 429s{exact}"
    steady = cell.get("steady")
    if capacity and steady:
        text += f" (after learning {steady['rate'] / capacity:.2f} R, {steady['share']:.1%})"
    return text


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "### Rate control",
        "",
        "`python -m benchmarks.bench_ratecontrol"
        + (" --quick" if report["quick"] else "")
        + "`: `emit_many` (c=64, default transport) against the local server's limiters over "
        "real HTTP, and the peer a user writes (a semaphore of 64 and a tenacity retry "
        "honouring Retry-After) in the same run, each on a fresh server. Per side: delivered "
        "per second over the limiter's capacity R and the 429 share of attempts, over the "
        f"whole run (its cold start included) and after learning (from {report['learn']:g} s "
        "on, read from the server's ledger); sporadic rows: answers per second (429s "
        f"included) over the same side's runs without 429s, medians of {SPORADIC_REPEATS} "
        "alternated runs each. The ratio is emit_many's delivered per second over the "
        "peer's. Both sides deliver every event exactly once (the ledger is checked). 2 "
        "cores, often shared with other work: compare the sides, not the absolute numbers.",
        "",
        "| Limiter | Retry-After | emit_many | naive peer | ratio |",
        "|---|---|---|---|---|",
    ]
    for cell in report["rows"]:
        cap = cell["capacity"]
        ours, peer = cell["ours"], cell["peer"]
        ratio = ours["rate"] / peer["rate"] if peer["rate"] else math.inf
        lines.append(
            f"| {cell['shape']} | {cell['form']} | {_side(ours, cap)} | {_side(peer, cap)} "
            f"| {ratio:.2f}x |"
        )
    lines += [
        "",
        "K processes, each its own client and gate, released together after start-up, on one "
        f"token bucket (R={RATE:g}): total delivered over R (every event over the slowest "
        "process's time), the 429 share, Jain's fairness of the per-process rates. Without a "
        "shared gate they are not coordinated; `RedisRateGate` (the `redis:` rows above) is.",
        "",
        "| K processes on one bucket | total / R | 429 share | Jain fairness |",
        "|---|---|---|---|",
    ]
    for k in report["k"]:
        exact = "" if k["exact"] else " (LEDGER MISMATCH)"
        lines.append(
            f"| K={k['k']}, burst {k['burst']}{exact} | {k['total'] / RATE:.2f} "
            f"| {k['share']:.1%} | {k['jain']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ratecontrol")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 shapes x 2 Retry-After forms, 6 s runs, one sporadic row, K=2 and 4",
    )
    args = parser.parse_args(argv)
    run(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

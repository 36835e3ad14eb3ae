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
FORMS_FULL = ["fractional", "seconds", "http-date", "milliseconds", "absent"]
FORMS_QUICK = ["fractional", "seconds"]


def _ledger(base: str) -> dict[str, Any]:
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


def _cell(options: list[str], n: int, side: str) -> dict[str, Any]:
    with server_process(["-m", "ventryx.testing", "--port", "0", "--no-record", *options]) as url:
        run = _ours if side == "ours" else _peer
        elapsed = anyio.run(run, url, n, side)
        ledger = _ledger(url.removesuffix("/v1"))
    attempts = sum(v for k, v in ledger["attempts"].items() if k.startswith("POST"))
    return {
        "rate": n / elapsed,
        "share": ledger["rate_limited"] / max(attempts, 1),
        "exact": ledger["event_count"] == n and ledger["duplicates"] == 0,
    }


def _process(url: str, n: int, tag: str, out: Any) -> None:
    elapsed = anyio.run(_ours, url, n, tag)
    out.put((tag, n / elapsed))


def _k_processes(k: int, n: int) -> dict[str, Any]:
    options = ["--rate-limit", str(RATE), "--burst", "1"]
    with server_process(["-m", "ventryx.testing", "--port", "0", "--no-record", *options]) as url:
        out: Any = multiprocessing.get_context("spawn").Queue()
        started = time.perf_counter()
        procs = [
            multiprocessing.get_context("spawn").Process(
                target=_process, args=(url, n // k, f"p{i}", out)
            )
            for i in range(k)
        ]
        for proc in procs:
            proc.start()
        rates = [out.get(timeout=600)[1] for _ in procs]
        for proc in procs:
            proc.join()
        elapsed = time.perf_counter() - started
        ledger = _ledger(url.removesuffix("/v1"))
    attempts = sum(v for k_, v in ledger["attempts"].items() if k_.startswith("POST"))
    jain = sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates))
    return {
        "total": ledger["event_count"] / elapsed,
        "sum_rates": sum(rates),
        "share": ledger["rate_limited"] / max(attempts, 1),
        "jain": jain,
        "exact": ledger["event_count"] == (n // k) * k and ledger["duplicates"] == 0,
    }


def run(quick: bool) -> dict[str, Any]:
    seconds = 4.0 if quick else 12.0
    forms = FORMS_QUICK if quick else FORMS_FULL
    rows: list[dict[str, Any]] = []
    shapes = SHAPES[1:3] if quick else SHAPES
    for label, options, capacity in shapes:
        for form in forms:
            n = int((capacity or RATE) * seconds)
            cell = {"shape": label, "form": form, "capacity": capacity}
            for side in ("ours", "peer"):  # interleaved, each on a fresh server
                cell[side] = _cell([*options, "--retry-after", form], n, side)
            rows.append(cell)
            _log(cell)
    baseline: dict[str, dict[str, Any]] = {}
    for side in ("ours", "peer"):
        baseline[side] = _cell(["--limiter", "sporadic", "--sporadic", "0"], 600, side)
    for p in SPORADIC[:1] if quick else SPORADIC:
        cell = {"shape": f"sporadic 429s p={p:.0%}", "form": "fractional", "capacity": None}
        for side in ("ours", "peer"):
            options = ["--limiter", "sporadic", "--sporadic", str(p), "--sporadic-wait", "0.001"]
            cell[side] = _cell(options, 600, side)
            cell[side]["vs_none"] = cell[side]["rate"] / baseline[side]["rate"]
        rows.append(cell)
        _log(cell)
    kprocs = []
    for k in (2, 4) if quick else (2, 4, 8):
        result = _k_processes(k, int(RATE * seconds * 1.5))
        result["k"] = k
        kprocs.append(result)
        _log(result)
    report = {"rows": rows, "k": kprocs, "baseline": baseline, "quick": quick}
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
    return f"{head}, {cell['share']:.1%} 429s{exact}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "### Rate control",
        "",
        "`python -m benchmarks.bench_ratecontrol"
        + (" --quick" if report["quick"] else "")
        + "`: `emit_many` (c=64, default transport) against the local server's limiters over "
        "real HTTP, and the peer a user writes (a semaphore of 64 and a tenacity retry "
        "honouring Retry-After) in the same run, each on a fresh server; delivered per second "
        "over the limiter's capacity R (sporadic rows: over the same client without 429s), "
        "the 429 share of attempts. Both sides deliver every event exactly once (the ledger "
        "is checked). 2 cores, often shared with other work: compare the sides, not the absolute "
        "numbers.",
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
        "| K processes on one bucket (R=50, burst 1) | total / R | 429 share | Jain fairness |",
        "|---|---|---|---|",
    ]
    for k in report["k"]:
        exact = "" if k["exact"] else " (LEDGER MISMATCH)"
        lines.append(
            f"| K={k['k']}{exact} | {k['total'] / RATE:.2f} | {k['share']:.1%} | {k['jain']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ratecontrol")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 shapes x 2 Retry-After forms, 4 s runs, one sporadic row, K=2 and 4",
    )
    args = parser.parse_args(argv)
    run(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

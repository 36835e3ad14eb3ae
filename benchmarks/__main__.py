"""``python -m benchmarks [--quick]``: every benchmark, one table of ratios, JSON and a plot.

Writes ``latest.json`` (the rows, raw curve data, the machine) and ``concurrency.png`` to
``benchmarks/results/`` (``--out`` to change), and ``PERFORMANCE.md`` in full mode or with
``--write-markdown``. Exits 1 when a benchmark failed (not when a target is missed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import bench_curve, bench_decode, bench_import, bench_percall, bench_web
from benchmarks._external import external_rows, load_runner
from benchmarks._util import (
    Config,
    Row,
    canned_server,
    machine_info,
    machine_line,
    render_table,
    ventryx_server,
)

__all__ = ["BENCHES", "main", "run_all"]

BENCHES = ("percall", "curve", "web", "decode", "import", "bulk", "emitter", "server", "redis")
RESULTS = Path(__file__).parent / "results"


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _guard(group: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """Run one benchmark; a crash becomes an ``error`` row instead of ending the run."""
    started = time.perf_counter()
    _log(f"{group} ...")
    try:
        rows = fn()
    except Exception as exc:
        traceback.print_exc()
        rows = [Row.error(group, "benchmark", exc)]
    _log(f"{group} done in {time.perf_counter() - started:.1f} s")
    return rows


def _bulk_available() -> str | None:
    """Why the bulk benchmark cannot run, or ``None`` when it can."""
    try:
        from ventryx.resources.events import AsyncEvents
    except ImportError as exc:
        return f"ventryx does not import: {exc}"
    if not hasattr(AsyncEvents, "emit_many"):
        return "AsyncVentryx().events has no emit_many yet"
    return None


def _external(group: str, module: str, quick: bool, extra: dict[str, Any]) -> list[Row]:
    runner = load_runner(module)
    if runner is None:
        return [Row.unavailable(group, "benchmark", f"benchmarks/{module}.py does not exist")]
    if group == "bulk" and (why := _bulk_available()) is not None:
        return [Row.unavailable(group, "benchmark", why)]
    result = runner(quick)
    extra[group] = result
    return external_rows(group, result)


def run_all(
    cfg: Config,
    out: Path,
    *,
    only: Sequence[str] = BENCHES,
    write_markdown: bool = False,
    update: bool = False,
) -> dict[str, Any]:
    """Run the selected benchmarks, print the table, write the results; return the report.

    ``update``: the rows of the groups run replace theirs in the results already in ``out``
    (``latest.json``, ``PERFORMANCE.md``); every other row is kept as it was measured.
    """
    info = machine_info()
    started = time.time()
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    curve: dict[str, Any] = {}
    quick = cfg.name != "full"
    with contextlib.ExitStack() as stack:
        needs_canned = {"percall", "curve", "web"} & set(only)
        canned = stack.enter_context(canned_server()) if needs_canned else ""
        if "percall" in only:
            local: str | None = None
            try:
                local = stack.enter_context(ventryx_server())
            except Exception as exc:
                _log(f"the local Ventryx server did not start: {exc}")
            rows += _guard("per-call", lambda: bench_percall.run(cfg, canned, local))
        if "curve" in only:

            def do_curve() -> list[Row]:
                curve_rows, rps = bench_curve.run(cfg, canned)
                curve["levels"] = list(cfg.curve_levels)
                curve["rps"] = {k: {str(c): v for c, v in d.items()} for k, d in rps.items()}
                try:
                    bench_curve.plot(
                        rps, cfg.curve_levels, out / "concurrency.png", machine_line(info)
                    )
                    curve["plot"] = "concurrency.png"
                except ImportError:
                    curve["plot"] = None
                    _log("matplotlib is not installed: concurrency.png not drawn")
                return curve_rows

            rows += _guard("curve", do_curve)
        if "web" in only:
            rows += _guard("web", lambda: bench_web.run(cfg, canned))
    if "decode" in only:
        rows += _guard("decode", lambda: bench_decode.run(cfg))
    if "import" in only:
        rows += _guard("import", lambda: bench_import.run(cfg))
    externals = (
        ("bulk", "bench_bulk"),
        ("emitter", "bench_emitter"),
        ("server", "bench_server"),
        ("redis", "bench_redis_gate"),
    )
    for group, module in externals:
        if group in only:
            rows += _guard(group, lambda g=group, m=module: _external(g, m, quick, extra))

    report = {
        "mode": cfg.name,
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "config": dict(vars(cfg)),
        "rows": [row.as_dict() for row in rows],
        "curve": curve,
        "external": extra,
    }
    out.mkdir(parents=True, exist_ok=True)
    markdown = _markdown(rows, report)
    if update and (out / "latest.json").exists() and (out / "PERFORMANCE.md").exists():
        groups = {row.group for row in rows}
        previous = json.loads((out / "latest.json").read_text())
        kept = [r for r in previous["rows"] if r["group"] not in groups]
        report = {**previous, "rows": kept + report["rows"], f"update:{','.join(only)}": report}
        markdown = _spliced((out / "PERFORMANCE.md").read_text(), rows, report, only)
    (out / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nventryx benchmarks ({cfg.name} mode) on {machine_line(info)}\n")
    print(render_table(rows))
    print(f"\nwrote {out / 'latest.json'}")
    if write_markdown:
        (out / "PERFORMANCE.md").write_text(markdown)
        print(f"wrote {out / 'PERFORMANCE.md'}")
    return report


def _spliced(
    markdown: str, rows: Sequence[Row], report: dict[str, Any], only: Sequence[str]
) -> str:
    """``PERFORMANCE.md`` with the table lines of ``rows``' groups replaced by ``rows``."""
    groups = {row.group for row in rows}
    fresh = render_table(rows, markdown=True).splitlines()[2:]
    out: list[str] = []
    said = f"Rows of `{', '.join(sorted(groups))}` measured again on "
    skipping = False  # the note of an earlier update of the same groups: replaced
    for line in markdown.splitlines():
        if line.startswith(said):
            skipping = True
            continue
        if skipping:
            skipping = bool(line.strip())
            continue
        group = line[2:].partition(":")[0] if line.startswith("| ") else None
        if group in groups:
            out += fresh
            fresh = []
            continue
        if line.startswith("| Comparison |"):
            day = report[f"update:{','.join(only)}"]["started"][:10]
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            out += [
                f"{said}{day}, with a load average of {load} (1, 5, 15 min) as the run ended "
                f"on this {os.cpu_count()}-core machine "
                f"(`python -m benchmarks --only {','.join(only)} --update`).",
                "",
            ]
        out.append(line)
    if fresh:  # groups the file did not have yet: after the table
        at = max(i for i, line in enumerate(out) if line.startswith("| ")) + 1
        out[at:at] = fresh
    return "\n".join(out) + "\n"


def _markdown(rows: Sequence[Row], report: dict[str, Any]) -> str:
    info = report["machine"]
    return (
        "<!-- Written by `python -m benchmarks` (full mode); do not edit by hand. -->\n"
        "## Performance\n\n"
        f"Measured {report['started'][:10]} on {machine_line(info)}, "
        f"{info['platform']}; {report['mode']} mode, {report['config']['runs']} interleaved runs "
        "per figure, median [min-max]. Ratios are SDK / raw measured side by side in the "
        "same run; CPU/req is the client process's CPU time per request (the server runs in "
        "another process). Targets are on the median ratio.\n\n"
        f"{render_table(rows, markdown=True)}\n\n"
        "![requests/s against concurrency](concurrency.png)\n\n"
        "How to run and how to read these figures: `benchmarks/README.md`.\n"
        + _ratecontrol_section()
    )


def _ratecontrol_section() -> str:
    """The last ``benchmarks.bench_ratecontrol`` table, kept when PERFORMANCE.md is rewritten."""
    table = RESULTS / "RATECONTROL.md"
    if not table.exists():
        return ""
    return f"\n<!-- ratecontrol:begin -->\n{table.read_text()}<!-- ratecontrol:end -->\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the short mode CI runs (< 2 min)")
    mode.add_argument(
        "--tiny", action="store_true", help="smoke test: proves it runs, numbers meaningless"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    parser.add_argument(
        "--write-markdown", action="store_true", help="write PERFORMANCE.md (always in full mode)"
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the rows of the benchmarks run in the results already in --out",
    )
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    cfg = Config.tiny() if args.tiny else Config.quick() if args.quick else Config.full()
    report = run_all(
        cfg,
        args.out,
        only=only,
        write_markdown=args.write_markdown or cfg.name == "full",
        update=args.update,
    )
    return 1 if any(row["status"] == "error" for row in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())

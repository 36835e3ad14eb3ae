"""Instructions per call, counted by valgrind: ``python -m benchmarks.instructions``.

Counts vary far less with the machine's load than timings, but at a concurrency above 1 they
still do: a loaded machine hands the event loop fewer answers per turn, so each call pays for
more turns. Compare sides measured in one quiet run; ``-c 1`` is the steadiest.
For each side (ventryx on aiohttp and httpx, raw aiohttp and raw httpx) and each operation
(``events.emit``, ``workflows.list``) it runs a child process under ``valgrind --tool=callgrind``
that makes ``--small`` calls, then another that makes ``--large``, at concurrency ``-c``, against
the canned server; the difference of the two totals over the difference of the calls is the
cost of one call, without start-up, imports and the first connections. Not part of
``python -m benchmarks`` (it is slow: valgrind runs Python some 50 times slower).
``--callgrind-dir DIR`` keeps the output files for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile

from benchmarks._util import canned_server

__all__ = ["main"]

SIDES = ("ventryx+aiohttp", "raw-aiohttp", "ventryx+httpx", "raw-httpx")
OPS = ("emit", "list")
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


async def _child(side_name: str, op: str, calls: int, concurrency: int, base: str) -> None:
    from benchmarks.bench_web import _Side  # pyright: ignore[reportPrivateUsage]

    side = _Side(side_name, base)
    await side.open()
    call = side.calls[op]
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await side.close()


def _count(side: str, op: str, calls: int, args: argparse.Namespace, base: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        where = args.callgrind_dir or tmp
        out = os.path.join(where, f"callgrind.{side}.{op}.{calls}")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            side,
            op,
            str(calls),
            str(args.c),
            base,
        ]
        subprocess.run(command, check=True, capture_output=True)
        with open(out, "rb") as file:
            found = _TOTALS.search(file.read())
        if found is None:
            raise RuntimeError(f"no totals in {out}")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("-c", type=int, default=64, help="concurrency (64)")
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--callgrind-dir")
    args = parser.parse_args(argv)
    if args.child:
        side, op, calls, concurrency, base = args.child
        asyncio.run(_child(side, op, int(calls), int(concurrency), base))
        return
    with canned_server() as url:
        base = f"{url}/v1"
        for op in args.ops.split(","):
            for side in args.sides.split(","):
                small = _count(side, op, args.small, args, base)
                large = _count(side, op, args.large, args, base)
                per_call = (large - small) / (args.large - args.small)
                print(f"{op:5} {side:16} {per_call / 1000:8.0f} k instructions/call", flush=True)


if __name__ == "__main__":
    main()

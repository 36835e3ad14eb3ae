"""Import time: ``python -c "import ventryx"`` against ``import httpx``, in fresh processes.

Each round runs every command once, in a rotating order; the bare interpreter start
(``python -c pass``) measured in the same round is subtracted. The figure is the median over
rounds of that difference, in milliseconds of wall time.

``import ventryx`` leaves the models (attrs classes) and the bulk engine for first use; the
row "models loaded" shows what the first decoded response adds, without a target.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks._util import Config, Row, Stat, paired_ratio

__all__ = ["TARGET", "run"]

TARGET = 1.5
_COMMANDS = {
    "pass": "pass",
    "httpx": "import httpx",
    "ventryx": "import ventryx",
    "ventryx_sync": "import ventryx_sync; ventryx_sync.Ventryx",
    "models": "import ventryx; ventryx.AsyncVentryx; ventryx.Workflow",
}
_LABELS = {
    "ventryx": "import ventryx",
    "ventryx_sync": "import ventryx_sync",
    "models": "import ventryx, models loaded",
}


def _time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def _sync_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", _COMMANDS["ventryx_sync"]],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return probe.returncode == 0


def run(cfg: Config) -> list[Row]:
    commands = dict(_COMMANDS)
    sync = _sync_available()
    if not sync:
        del commands["ventryx_sync"]
    names = list(commands)
    for name in names:  # warm the page cache and write the .pyc files
        _time(commands[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(cfg.import_runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_time(commands[name]))
    own = {name: [t - p for t, p in zip(times[name], times["pass"], strict=True)] for name in names}
    rows = []
    for name in ("ventryx", "ventryx_sync", "models"):
        label = _LABELS[name]
        if name not in own:
            rows.append(Row.unavailable("import", label, "ventryx_sync.Ventryx is not importable"))
            continue
        rows.append(
            Row(
                "import",
                label,
                ratio_label=f"vs import httpx ({cfg.import_runs} runs)",
                ratio=paired_ratio(own[name], own["httpx"]),
                target=None if name == "models" else TARGET,
                measured={
                    f"ms {name}": Stat.of(own[name]),
                    "ms httpx": Stat.of(own["httpx"]),
                    "ms bare interpreter": Stat.of(times["pass"]),
                },
            )
        )
    return rows

"""What every benchmark shares: statistics, result rows, servers in their own process, machine."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "Config",
    "Row",
    "Stat",
    "machine_info",
    "server_process",
]

API_KEY = "vx_test_local_key"  # the local Ventryx server's default key
EMIT_TYPE = "user.registered"
EMIT_DATA = {"user_id": "usr_123", "plan": "pro"}


@dataclasses.dataclass(frozen=True)
class Config:
    """How long and how often each figure is measured."""

    name: str
    runs: int  # measured runs per figure (each side once per run, interleaved)
    duration: float  # seconds of one measured per-call segment
    warmup: float  # seconds of warm-up before the first segment of each comparison
    curve_duration: float
    curve_levels: tuple[int, ...]
    import_runs: int
    decode_pages: int  # pages decoded per timed segment

    @classmethod
    def full(cls) -> Config:
        return cls("full", 5, 2.0, 0.5, 1.0, (1, 4, 16, 64, 256), 21, 200)

    @classmethod
    def quick(cls) -> Config:
        return cls("quick", 2, 0.6, 0.2, 0.3, (1, 4, 16, 64, 256), 15, 60)

    @classmethod
    def tiny(cls) -> Config:
        """For the test that proves the benchmarks run: numbers, not meaningful ones."""
        return cls("tiny", 1, 0.1, 0.05, 0.05, (1, 8), 3, 3)


@dataclasses.dataclass(frozen=True)
class Stat:
    """The median of several runs and their spread (min..max)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        if self.n == 1 or self.low == self.high:
            return f"{self.median:,.{digits}f}{unit}"
        return f"{self.median:,.{digits}f}{unit} [{self.low:,.{digits}f}-{self.high:,.{digits}f}]"

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


@dataclasses.dataclass
class Row:
    """One line of the table: one comparison, its measured values, its ratio and target."""

    group: str
    name: str
    ratio_label: str = ""  # what the ratio divides, e.g. "CPU/req ventryx / raw"
    ratio: Stat | None = None
    target: float | None = None  # the ratio must be <= target (>= if at_least); None: none
    measured: dict[str, Stat] = dataclasses.field(default_factory=dict)
    units: dict[str, str] = dataclasses.field(default_factory=dict)  # by quantity
    status: str = "ok"  # ok | unavailable | error
    note: str = ""
    at_least: bool = False  # the target is a floor (throughput) rather than a ceiling (cost)
    ratio_unit: str = "x"  # "" for a share (429s / attempts)

    @property
    def met(self) -> bool | None:
        if self.status != "ok" or self.target is None or self.ratio is None:
            return None
        if self.at_least:
            return self.ratio.median >= self.target
        return self.ratio.median <= self.target

    def measured_text(self) -> str:
        if self.status != "ok":
            return f"{self.status}: {self.note}" if self.note else self.status
        # Keys are "QUANTITY SIDE" ("CPU/req ventryx"); one group per quantity.
        groups: dict[str, list[str]] = {}
        for key, stat in self.measured.items():
            quantity, _, side = key.partition(" ")
            unit = self.units.get(quantity, "")
            digits = 2 if abs(stat.median) < 10 else 0
            groups.setdefault(quantity, []).append(f"{side} {stat.fmt(digits)}{unit}".strip())
        text = "; ".join(f"{q}: {', '.join(values)}" for q, values in groups.items())
        return f"{text} ({self.note})" if self.note else text

    def ratio_text(self) -> str:
        if self.ratio is None:
            return "-"
        # A share (no unit) keeps a third digit: 0.046 and 0.054 both round to 0.05.
        return self.ratio.fmt(2 if self.ratio_unit else 3, self.ratio_unit)

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        met = self.met
        verdict = "" if met is None else (" met" if met else " NOT met")
        return f"{'>=' if self.at_least else '<='} {self.target:.2f}{self.ratio_unit}{verdict}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "status": self.status,
            "note": self.note,
            "ratio_label": self.ratio_label,
            "ratio": self.ratio.as_dict() if self.ratio else None,
            "target": self.target,
            "target_is_floor": self.at_least,
            "met": self.met,
            "measured": {
                k: {**v.as_dict(), "unit": self.units.get(k.partition(" ")[0], "").strip()}
                for k, v in self.measured.items()
            },
        }

    @classmethod
    def unavailable(cls, group: str, name: str, why: str) -> Row:
        return cls(group, name, status="unavailable", note=why)

    @classmethod
    def error(cls, group: str, name: str, exc: BaseException) -> Row:
        return cls(group, name, status="error", note=f"{type(exc).__name__}: {exc}"[:300])


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Stat:
    """The ratio run by run (run i of A over run i of B, measured side by side), summarised."""
    return Stat.of([a / b for a, b in zip(numerators, denominators, strict=True) if b])


def render_table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    header = ("Comparison", "Measured: median [min-max]", "Ratio", "Target")
    lines = [
        (
            f"{r.group}: {r.name}",
            r.measured_text(),
            f"{r.ratio_text()} {r.ratio_label}".strip() if r.ratio else "-",
            r.target_text(),
        )
        for r in rows
    ]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines
        ]
        return "\n".join(out)
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    widths[1] = min(widths[1], 90)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "event_loop": "asyncio default policy (no uvloop), same loop for both sides",
        "versions": {
            name: _version(name)
            for name in ("ventryx", "httpx", "anyio", "aiohttp", "httpx-aiohttp", "cattrs")
        },
    }
    with contextlib.suppress(ImportError):
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    return info


def machine_line(info: dict[str, Any]) -> str:
    v = info["versions"]
    return (
        f"{info['cpu']}, {info['logical_cores']} cores, {info['python']}, "
        f"httpx {v.get('httpx')}, anyio {v.get('anyio')}, aiohttp {v.get('aiohttp')}"
    )


_URL = re.compile(r"https?://\S+")


@contextlib.contextmanager
def server_process(args: Sequence[str], *, timeout: float = 20.0) -> Iterator[str]:
    """Run ``python ARGS`` in its own process until exit; yield the URL it prints when ready."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"{' '.join(args)} did not print its URL in time") from None
            if not line:
                raise RuntimeError(f"{' '.join(args)} exited with {proc.wait()}")
            match = _URL.search(line)
            if match:
                yield match.group(0).rstrip("/")
                return
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        stdout.close()


def canned_server() -> contextlib.AbstractContextManager[str]:
    """The canned-response server; yields ``http://127.0.0.1:PORT``."""
    return server_process(["-m", "benchmarks._canned_server"])


def ventryx_server() -> contextlib.AbstractContextManager[str]:
    """The local Ventryx server (``python -m ventryx.testing``); yields its ``.../v1`` URL."""
    return server_process(["-m", "ventryx.testing", "--port", "0", "--no-record"])

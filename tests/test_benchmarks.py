"""The benchmark runner still runs: every row of a tiny run has numbers and the JSON is written.

Timings are not asserted (this machine is not the benchmark machine); ``--tiny`` makes each
figure a fraction of a second. The runner is a subprocess, as CI runs it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _finite(stat: dict[str, float]) -> bool:
    return all(math.isfinite(stat[k]) for k in ("median", "min", "max"))


@pytest.mark.timeout(360)
def test_runner_tiny_mode_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--out",
            str(out),
            "--write-markdown",
            "--only",
            "percall,curve,decode,import",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # seconds of work, minutes on a loaded machine
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "latest.json").read_text())
    assert report["machine"]["cpu"]
    assert report["machine"]["versions"]["httpx"]
    groups = {row["group"] for row in report["rows"]}
    assert groups == {"async", "sync", "curve", "decode", "import"}
    for row in report["rows"]:
        assert row["status"] in ("ok", "unavailable"), row
        if row["status"] == "ok":
            assert row["measured"], row
            assert all(_finite(stat) for stat in row["measured"].values()), row
            assert row["ratio"] is not None, row
            assert _finite(row["ratio"]), row
            assert row["ratio"]["median"] > 0, row
    assert "| Comparison |" in (out / "PERFORMANCE.md").read_text()
    assert "ventryx benchmarks (tiny mode)" in proc.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "concurrency.png").stat().st_size > 0

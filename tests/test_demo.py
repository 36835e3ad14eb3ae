"""``ventryx demo`` runs end to end in a subprocess, well under a minute, and checks itself."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

SUMMARY = re.compile(
    r"^Summary: delivered 10,000/10,000 events in [\d.]+s \([\d,]+/s\), [\d,]+ retries; "
    r"ledger: 10,000 applied, 0 duplicates, [\d,]+ idempotent replays$",
    re.MULTILINE,
)


@pytest.mark.slow
@pytest.mark.parametrize("progress", ["auto", "plain"])
def test_demo(progress: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ventryx", "demo", "--progress", progress],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no API key, no base URL: the demo needs neither
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert SUMMARY.search(out), out
    assert out.rstrip().endswith("Demo finished: every check passed.")
    for line in (
        "pagination: page 2, per_page 50, total 143: 50 items",
        "`for` over every page: 144 workflows",
        "wrong key: AuthenticationError status 401, code 'authentication_failed'",
        "unknown id: NotFoundError code 'not_found'",
        "on attempt 3 (one Idempotency-Key for all), applied 1 time",
    ):
        assert line in out
    assert "Traceback" not in result.stderr
    if progress == "plain":  # stderr is not a terminal: the plain bar prints its final line
        assert "emit_many [##############################] 10,000/10,000" in result.stderr

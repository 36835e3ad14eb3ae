"""Each file under examples/ runs against a local server in a subprocess; its output is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ventryx.testing import LocalServer
from ventryx_sync import Ventryx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.py"))
NAMES = sorted({Path(f).name for f in FILES})

# What each example prints on a server holding 143 workflows (the Examples page's numbers).
EXPECTED = {
    "list_workflows.py": r"(?m)^wf_\S+ Workflow 0\n(.*\n)*20 workflows on this page, 143 in all$",
    "create_workflow.py": r"^Created workflow: wf_\S+$",
    "emit_event.py": r"^evt_\S+$",
    "pagination.py": r"^page 2, per_page 50, total 143: 50\n143 workflows in all$",
    "error_handling.py": r"^143 workflows$",
    "bulk_emit.py": r"^delivered 1000 of 1000 in \d+\.\ds, 0 retries$",
    "background_emit.py": r"^enqueued 100 events in \d+\.\d ms; delivered 100, pending 0$",
}


def run(
    path: str, server: LocalServer, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VENTRYX_API_KEY": api_key or server.api_key,
        "VENTRYX_BASE_URL": server.base_url,
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES / path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def seeded(server: LocalServer) -> LocalServer:
    with Ventryx(api_key=server.api_key, base_url=server.base_url) as client:
        for n in range(143):
            client.workflows.create(
                name=f"Workflow {n}",
                trigger={"event": "user.registered"},
                steps=[{"type": "send_notification", "channel": "email", "template": "welcome"}],
            )
    return server


def test_every_example_has_both_forms_and_an_expectation() -> None:
    assert FILES, "no examples found"
    for name in NAMES:
        assert f"async/{name}" in FILES
        assert f"sync/{name}" in FILES
    assert set(NAMES) == set(EXPECTED)


@pytest.mark.parametrize("path", FILES)
def test_example_runs(path: str, seeded: LocalServer) -> None:
    before = len(seeded.ledger.events)
    result = run(path, seeded)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert re.fullmatch(EXPECTED[Path(path).name], result.stdout.strip()), result.stdout
    applied = len(seeded.ledger.events) - before
    name = Path(path).name
    effects = {"emit_event.py": 1, "bulk_emit.py": 1000, "background_emit.py": 100}
    assert applied == effects.get(name, 0)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_error_handling_prints_the_code(kind: str, server: LocalServer) -> None:
    result = run(f"{kind}/error_handling.py", server, api_key="vx_not_a_key")
    assert result.returncode == 1
    assert re.fullmatch(
        r"API error \[authentication_failed\]: .+ \(request id req_\w+\)", result.stdout.strip()
    ), result.stdout
    assert "vx_not_a_key" not in result.stdout + result.stderr

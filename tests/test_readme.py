"""Every code block of README.md is run: Python blocks here, the two shell commands elsewhere.

Python blocks run as scripts in a subprocess with ``VENTRYX_API_KEY``/``VENTRYX_BASE_URL``
pointing at a fresh local server; a block after ``<!-- readme-test: pytest -->`` is a test file
and runs under pytest. The shell blocks are the demo command (``tests/test_demo.py`` runs the
demo) and the test command (what ``.ci/run`` runs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ventryx.testing import LocalServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mode>\w+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S
)
# Only `python3` (Debian and Ubuntu have no `python`), and nothing installed outside .venv.
DEMO_COMMAND = (
    "python3 -m venv .venv && "
    '.venv/bin/python -m pip install ".[cli,aiohttp]" && .venv/bin/ventryx demo'
)
TEST_COMMAND = (
    'python3 -m venv .venv && .venv/bin/python -m pip install "nox[uv]" && .venv/bin/python -m nox'
)
REPO = "https://github.com/ventryx/ventryx-python"
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def blocks() -> list[tuple[str, str, str, int]]:
    text = README.read_text(encoding="utf-8")
    return [
        (m["lang"], m["mode"] or "script", m["code"], text.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(text)
    ]


PYTHON = [(code, mode, line) for lang, mode, code, line in blocks() if lang == "python"]


def test_the_only_other_blocks_are_the_two_commands() -> None:
    others = [(lang, code.strip()) for lang, _, code, _ in blocks() if lang != "python"]
    assert others == [("sh", DEMO_COMMAND), ("sh", TEST_COMMAND)]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert f"\n{TEST_COMMAND}\n" in ci
    assert len(PYTHON) >= 10


def performance_block(markdown: str) -> str:
    """What the README shows of ``PERFORMANCE.md``: its text, with paths from the repo root."""
    lines = [
        line
        for line in markdown.splitlines()
        if not line.startswith("<!--") and line.strip() != "## Performance"
    ]
    body = "\n".join(lines).strip()
    image = f"{REPO.replace('github.com', 'raw.githubusercontent.com')}/main/benchmarks/results"
    body = body.replace("](concurrency.png)", f"]({image}/concurrency.png)")
    guide = f"[`benchmarks/README.md`]({REPO}/blob/main/benchmarks/README.md)"
    return body.replace("`benchmarks/README.md`", guide)


def test_performance_section_matches_the_benchmark_results() -> None:
    text = README.read_text(encoding="utf-8")
    begin = text.index("\n", text.index("<!-- performance:begin")) + 1
    shown = text[begin : text.index("<!-- performance:end -->")].strip()
    results = README.parent / "benchmarks" / "results" / "PERFORMANCE.md"
    if not results.exists():
        assert "not in this tree yet" in shown
        return
    expected = performance_block(results.read_text(encoding="utf-8"))
    assert shown == expected, "copy benchmarks/results/PERFORMANCE.md into the README:\n" + expected
    assert "/main/benchmarks/results/concurrency.png)" in shown


def test_links_work_on_an_index_page() -> None:
    """PyPI shows the README without the repository: every link and image is absolute."""
    targets = [m["target"] for m in LINK.finditer(README.read_text(encoding="utf-8"))]
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert relative == []


@pytest.mark.parametrize(
    ("code", "mode"),
    [(code, mode) for code, mode, _ in PYTHON],
    ids=[f"line{n}" for *_, n in PYTHON],
)
def test_python_block(code: str, mode: str, server: LocalServer, tmp_path: Path) -> None:
    env = {**os.environ, "VENTRYX_API_KEY": server.api_key, "VENTRYX_BASE_URL": server.base_url}
    env.pop("VENTRYX_LOG", None)
    if mode == "pytest":
        script = tmp_path / "test_readme_block.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        script = tmp_path / "readme_block.py"
        command = [sys.executable, str(script)]
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if mode == "pytest":
        assert re.search(r"\b2 passed\b", result.stdout), result.stdout
    else:
        assert (result.stdout + result.stderr).strip(), "every script block shows something"

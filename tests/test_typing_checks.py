"""The typing tests in tests/typing can fail: a public call typed ``Any`` breaks them.

A copy of the package has ``AsyncWorkflows.list`` (and its sync twin ``Workflows.list``)
rewritten to return ``Any``; mypy --strict and pyright (when installed) must then report the
``assert_type`` lines of tests/typing. The untouched copy is checked too, so a failure comes
from the rewrite and not from the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING_FILES = ["tests/typing/async_usage.py", "tests/typing/sync_usage.py"]
REWRITES = {
    "ventryx/resources/workflows.py": ") -> AsyncPager[Workflow]:",
    "ventryx_sync/resources/workflows.py": ") -> Page[Workflow]:",
}

pytestmark = pytest.mark.slow


def _copy(into: Path, *, returns_any: bool) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("ventryx", "ventryx_sync", "tests/typing"):
        shutil.copytree(ROOT / folder, into / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    if returns_any:
        for relative, annotation in REWRITES.items():
            path = into / relative
            text = path.read_text(encoding="utf-8")
            assert text.count(annotation) == 1, (relative, annotation)  # list is the only one
            future = "from __future__ import annotations\n"
            text = text.replace(annotation, ") -> Any:").replace(
                future, future + "from typing import Any\n", 1
            )
            path.write_text(text, encoding="utf-8")
    return into


def _run(tool: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(root), "PYTHONPATH": str(root)}
    return subprocess.run(
        [*tool, *TYPING_FILES],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def _mypy(root: Path) -> subprocess.CompletedProcess[str]:
    cache = root / ".mypy_cache"
    return _run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache)], root)


def _pyright() -> list[str] | None:
    found = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which(
        "pyright"
    )
    return None if found is None else [found, "--pythonpath", sys.executable]


def _reported(output: str, name: str) -> bool:
    return any(name in line and "error" in line.lower() for line in output.splitlines())


def test_mypy_passes_then_fails_on_an_any_return(tmp_path: Path) -> None:
    clean = _mypy(_copy(tmp_path / "clean", returns_any=False))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    broken = _mypy(_copy(tmp_path / "any", returns_any=True))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert _reported(broken.stdout, "async_usage.py"), broken.stdout
    assert _reported(broken.stdout, "sync_usage.py"), broken.stdout
    assert '"Any"' in broken.stdout  # mypy: Expression is of type "Any", not "AsyncPager[...]"


def test_pyright_passes_then_fails_on_an_any_return(tmp_path: Path) -> None:
    pyright = _pyright()
    if pyright is None:
        if os.environ.get("CI"):
            pytest.fail("pyright is not installed, and CI must run this test")
        pytest.skip("pyright is not installed")
    clean = _run(pyright, _copy(tmp_path / "clean", returns_any=False))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    broken = _run(pyright, _copy(tmp_path / "any", returns_any=True))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert _reported(broken.stdout, "async_usage.py"), broken.stdout
    assert _reported(broken.stdout, "sync_usage.py"), broken.stdout
    assert "assert_type" in broken.stdout, broken.stdout

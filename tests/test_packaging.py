"""Packaging: the metadata, the light pytest plugin, and an sdist the test suite runs from."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_the_registered_pytest_plugin_imports_nothing_of_ventryx() -> None:
    code = (
        "import sys, _ventryx_pytest\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ventryx', 'httpx')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
    assert 'ventryx = "_ventryx_pytest"' in PYPROJECT
    import _ventryx_pytest
    import ventryx.testing.pytest_plugin as explicit

    assert explicit.ventryx_server is _ventryx_pytest.ventryx_server


def test_metadata_has_urls_license_and_upper_bounds() -> None:
    meta = importlib.metadata.metadata("ventryx")
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "Copyright (c) 2026 The ventryx authors" in (ROOT / "LICENSE").read_text()
    requires = meta.get_all("Requires-Dist") or []
    for name in ("httpx", "anyio", "attrs", "cattrs", "tenacity", "httpx-aiohttp", "aiohttp"):
        spec = next(r for r in requires if re.match(rf"{name}\b(?!-)", r))
        assert "<" in spec, spec
    assert any(r.startswith("trio") and "extra == 'trio'" in r.replace('"', "'") for r in requires)


def build_sdist(out: Path) -> Path:
    """Build the sdist with hatchling's PEP 517 hook, offline (hatchling is a test dependency)."""
    code = "import sys; from hatchling.build import build_sdist; print(build_sdist(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out / result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_sdist_has_what_the_suite_needs_and_a_smoke_test_passes_from_it(tmp_path: Path) -> None:
    archive = build_sdist(tmp_path)
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:  # pragma: no cover - Python without the extraction filters
            tar.extractall(tmp_path)  # noqa: S202 - our own archive, just built
    needed = {
        "LICENSE",
        "README.md",
        "RELIABILITY.md",
        "CHANGELOG.md",
        "noxfile.py",
        ".ci/run",
        "_ventryx_pytest.py",
        "examples/async/list_workflows.py",
        "examples/sync/bulk_emit.py",
        "benchmarks/__main__.py",
        "benchmarks/results/PERFORMANCE.md",
        "scripts/generate_sync.py",
        "tests/conftest.py",
        "tests/typing/sync_usage.py",
    }
    assert needed <= names, sorted(needed - names)
    assert not [n for n in names if n.endswith(".pyc") or n.startswith((".venv/", ".nox/"))]

    unpacked = archive.parent / archive.name.removesuffix(".tar.gz")
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    where = subprocess.run(
        [sys.executable, "-c", "import ventryx, ventryx_sync; print(ventryx.__file__)"],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert Path(where.stdout.strip()).is_relative_to(unpacked)
    smoke = [
        "tests/test_readme.py::test_the_only_other_blocks_are_the_two_commands",
        "tests/test_readme.py::test_links_work_on_an_index_page",
        "tests/test_readme.py::test_performance_section_matches_the_benchmark_results",
        "tests/test_public_api.py",
        "tests/test_examples.py::test_every_example_has_both_forms_and_an_expectation",
        "tests/test_examples.py::test_example_runs[async/list_workflows.py]",
        "tests/test_emit_file.py::test_keyless_rerun_applies_nothing_twice",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-m", "not slow", *smoke],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

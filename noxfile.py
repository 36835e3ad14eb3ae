"""Developer tasks: `nox -s tests` is the README's test command; `nox -l` lists the rest."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|venv"  # uv when installed (nox[uv]): installs in seconds
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "sync_check", "tests"]
# `tests-all` is a claim about every supported Python: a missing one is an error, not a skip.
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PYPROJECT = nox.project.load_toml("pyproject.toml")
RUFF = "ruff==0.17.6"  # the generator of ventryx_sync formats its output with it, too
# Two pytest workers a core: much of the suite waits on sockets and timers, not the CPU (on 2
# cores, 4 workers took the 3.13 run from 162 s to 124 s, with the sims marked slow).
WORKERS = str(2 * (os.cpu_count() or 1))


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite on the current interpreter (starts its own local servers)."""
    # tests/test_generate_sync.py runs the generator, which formats its output with ruff.
    session.install("-e", ".[cli,aiohttp]", *_group("test"), RUFF)
    session.run("pytest", "-n", WORKERS, "--dist", "worksteal", *session.posargs)


@nox.session(name="tests-all", python=PYTHONS)
def tests_all(session: nox.Session) -> None:
    """The whole test suite on each of Python 3.10 to 3.13; fails when one is not installed."""
    session.install(".[cli,aiohttp]", *_group("test"), RUFF)
    session.run("pytest", "-q", "-n", WORKERS, "--dist", "worksteal", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check, then a check that the package imports."""
    session.install(RUFF, "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "-c", "import ventryx")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright strict on the packages and a usage file of each client."""
    session.install("-e", ".[cli,aiohttp]", *_group("lint"))
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typing")
    session.run("pyright")
    session.run("pyright", "tests/typing")


@nox.session(name="sync_check")
def sync_check(session: nox.Session) -> None:
    """Fail when ventryx_sync differs from a fresh generation."""
    session.install("-e", ".", RUFF)
    session.run("python", "scripts/generate_sync.py", "--check")


@nox.session(name="sync_generate")
def sync_generate(session: nox.Session) -> None:
    """Regenerate ventryx_sync from the async code."""
    session.install("-e", ".", RUFF)
    session.run("python", "scripts/generate_sync.py")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks; `nox -s bench -- --quick` is the short mode CI runs."""
    session.install(".[aiohttp]", *_group("bench"))
    session.run("python", "-m", "benchmarks", *session.posargs)

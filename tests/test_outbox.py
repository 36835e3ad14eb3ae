"""The SQLite outbox: a private WAL file, leases shared by processes, forks, dead letters, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ventryx.__main__ import main
from ventryx._bulk._input import idempotency_key_for
from ventryx._emitter._store import SQLiteStore
from ventryx.testing import Fault, FaultRule, LocalServer

ROOT = Path(__file__).resolve().parent.parent


def fill(path: Path, count: int, prefix: str = "k") -> list[str]:
    store = SQLiteStore(path)
    keys = []
    for n in range(count):
        idem = idempotency_key_for(f"{prefix}{n}")
        body = json.dumps({"type": "stored", "data": {"n": n, "p": prefix}})
        store.add(idem, f"{prefix}{n}", body, on_full="raise", block=False)
        keys.append(idem)
    store.close()
    return keys


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    fill(path, 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_path_that_cannot_be_an_outbox_is_refused(tmp_path: Path) -> None:
    from ventryx import InvalidInputError

    garbage = tmp_path / "not.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InvalidInputError) as info:
        SQLiteStore(garbage)
    assert info.value.param == "outbox"
    with pytest.raises(InvalidInputError):
        SQLiteStore(tmp_path / "missing-dir" / "x.db")


def test_leases_are_disjoint_and_expire(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    fill(path, 10)
    first, second, third = SQLiteStore(path), SQLiteStore(path), SQLiteStore(path)
    taken = first.lease(5, 0.3)
    rest = second.lease(10, 30)
    assert len(taken) == 5
    assert len(rest) == 5
    assert {r.id for r in taken}.isdisjoint(r.id for r in rest)
    assert third.lease(10, 30) == []  # everything is held
    first.renew(taken[:2], 30)  # a holder still working keeps its rows
    time.sleep(0.35)
    expired = third.lease(10, 30)
    assert {r.id for r in expired} == {r.id for r in taken[2:]}


def test_the_leases_of_a_dead_process_come_back_at_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    fill(path, 4)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        owner = f"{socket.gethostname()}:{gone.pid}:dead"
        conn.execute("UPDATE outbox SET owner = ?, available = ?", (owner, time.time() + 3600))
    assert len(SQLiteStore(path).lease(10, 30)) == 4


def test_dead_letters_are_kept_and_can_be_retried(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    keys = fill(path, 3)
    store = SQLiteStore(path)
    rows = store.lease(3, 30)
    store.dead(rows[0], 422, "UnprocessableEntityError: bad")
    store.done(rows[1])
    store.commit()
    store.release(rows[2], 0)
    assert (store.counts().pending, store.counts().dead) == (1, 1)
    [letter] = store.dead_letters()
    assert (letter.idempotency_key, letter.status, letter.data) == (
        keys[0],
        422,
        {"n": 0, "p": "k"},
    )
    assert store.retry_dead() == 1
    assert (store.counts().pending, store.counts().dead) == (2, 0)


WORKER = textwrap.dedent(
    """
    import json, sys
    from ventryx_sync import Ventryx

    base_url, api_key, path = sys.argv[1:4]
    with Ventryx(api_key=api_key, base_url=base_url) as client:
        with client.events.emitter(outbox=path, concurrency=4) as emitter:
            ok = emitter.flush(timeout=30)
            print(json.dumps({"ok": ok, "delivered": emitter.stats.delivered}))
    """
)


def test_several_processes_on_one_file_deliver_disjoint_shares(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    keys = fill(path, 300)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, server.base_url, server.api_key, str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    reports = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    assert all(report["ok"] for report in reports)
    assert sum(report["delivered"] for report in reports) == 300
    assert sorted(e["idempotency_key"] for e in server.ledger.events) == sorted(keys)
    assert server.ledger.replays == 0  # no row was sent by two processes


FORKING = textwrap.dedent(
    """
    import json, os, sys
    from ventryx_sync import Ventryx

    base_url, api_key, path = sys.argv[1:4]
    client = Ventryx(api_key=api_key, base_url=base_url)
    emitter = client.events.emitter(outbox=path)
    emitter.enqueue(type="parent", data={"n": 0})
    assert emitter.flush(timeout=10)
    pid = os.fork()
    if pid == 0:  # the child: the parent's delivery thread is not here
        for n in range(5):
            emitter.enqueue(type="child", data={"n": n})
        ok = emitter.flush(timeout=10)
        emitter.close()
        # The outbox file is shared: either process may deliver any row, so the child reports
        # how many it delivered (its exit code) and the two counts must add up.
        os._exit(emitter.stats.delivered if ok else 100)
    for n in range(5):
        emitter.enqueue(type="parent", data={"n": n + 1})
    _, status = os.waitpid(pid, 0)
    child = os.waitstatus_to_exitcode(status)
    ok = emitter.flush(timeout=10)
    emitter.close()
    delivered = emitter.stats.delivered + child
    print(json.dumps({"child_ok": child != 100, "ok": ok, "delivered": delivered}))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_delivers_with_its_own_thread_from_the_shared_outbox(
    server: LocalServer, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORKING, server.base_url, server.api_key, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == {"child_ok": True, "ok": True, "delivered": 11}
    types = sorted(e["type"] for e in server.ledger.events)
    assert types == ["child"] * 5 + ["parent"] * 6


EXITING = textwrap.dedent(
    """
    import sys
    from ventryx_sync import Ventryx

    base_url, api_key = sys.argv[1:3]
    client = Ventryx(api_key=api_key, base_url=base_url)
    emitter = client.events.emitter(drain_timeout=10)  # in memory, never closed
    for n in range(20):
        emitter.enqueue(type="at.exit", data={"n": n})
    """
)


def test_the_sync_emitter_drains_at_interpreter_exit(server: LocalServer) -> None:
    subprocess.run(
        [sys.executable, "-c", EXITING, server.base_url, server.api_key], check=True, timeout=60
    )
    assert len(server.ledger.events) == 20


# -- the command line ---------------------------------------------------------------------------


def cli(server: LocalServer, *args: str) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", server.api_key, *args]


def test_cli_status_drain_failed_retry(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.db"
    keys = fill(path, 20)
    store = SQLiteStore(path)
    [row] = store.lease(1, 30)
    store.dead(row, 422, "UnprocessableEntityError: nope")
    store.close()

    assert main(cli(server, "outbox", "status", str(path), "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["pending"], report["dead_letters"], report["leased"]) == (19, 1, 0)

    assert main(cli(server, "outbox", "failed", str(path))) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["key"] == "k0"

    assert main(cli(server, "outbox", "drain", str(path), "--progress", "none")) == 0
    assert "Delivered 19, rejected 0" in capsys.readouterr().out
    assert main(cli(server, "outbox", "retry", str(path))) == 0
    assert "Moved 1 dead letter back" in capsys.readouterr().out
    assert main(cli(server, "outbox", "drain", str(path), "--json")) == 0
    assert json.loads(capsys.readouterr().out) == {"delivered": 1, "rejected": 0, "left": 0}
    assert sorted(e["idempotency_key"] for e in server.ledger.events) == sorted(keys)


def test_cli_drain_is_bounded_and_exits_1_when_events_are_left(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.db"
    fill(path, 3)
    server.configure(faults=[FaultRule("POST /v1/events", fault=Fault("status", status=503))])
    args = cli(server, "outbox", "drain", str(path), "--timeout", "0.3", "--json")
    assert main(args) == 1
    assert json.loads(capsys.readouterr().out)["left"] == 3


def test_cli_refuses_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.db"
    for verb in ("status", "failed", "retry", "drain"):
        assert main(["--api-key", "vx_k", "outbox", verb, str(missing)]) == 2
        assert "no outbox file" in capsys.readouterr().err
    assert not missing.exists()


def test_cli_drain_with_a_refused_key_fails_instead_of_waiting(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.db"
    fill(path, 2)
    args = ["--base-url", server.base_url, "--api-key", "vx_wrong_key", "outbox", "drain"]
    assert main([*args, str(path), "--progress", "none"]) == 1
    assert "AuthenticationError" in capsys.readouterr().err
    assert SQLiteStore(path).counts().pending == 2

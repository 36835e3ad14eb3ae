"""``ventryx events emit-file`` when things go wrong: interrupts, re-runs, bad paths, no server.

Each case checks the local server's ledger: what was applied, how often, and that re-sending
the failures file completes the import without applying anything twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ventryx.__main__ import main
from ventryx._cli._emit_file import derived_key
from ventryx.testing import Fault, FaultRule, LocalServer, ServerConfig


def cli(server: LocalServer | str, *args: str, key: str = "vx_test_local_key") -> list[str]:
    base_url = server if isinstance(server, str) else server.base_url
    return ["--base-url", base_url, "--api-key", key, "events", "emit-file", *args]


def write_rows(path: Path, n: int, *, keyed: bool = False, start: int = 0) -> Path:
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {"type": "import.row", "data": {"i": i}}
        if keyed:
            row["key"] = f"row-{i}"
        rows.append(json.dumps(row))
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def applied(server: LocalServer) -> list[int]:
    return sorted(e["data"]["i"] for e in server.ledger.events)


def reasons(failures: Path) -> list[dict[str, Any]]:
    path = failures.with_name(failures.name + ".reasons")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_ctrl_c_prints_a_summary_and_the_failures_file_completes_the_import(
    tmp_path: Path,
) -> None:
    n = 1000
    source = write_rows(tmp_path / "big.jsonl", n)  # no keys: derived ones make re-runs safe
    failures = tmp_path / "big.failures"
    slow = FaultRule("POST /v1/events", fault=Fault("delay", delay=0.05))
    with LocalServer(ServerConfig(faults=[slow])) as server:
        args = [*cli(server, str(source), "--failures", str(failures)), "--concurrency", "4"]
        with subprocess.Popen(
            [sys.executable, "-m", "ventryx", *args, "--progress", "none"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            deadline = time.monotonic() + 60
            while len(server.ledger.events) < 50 and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "interrupted; waiting up to 5s for the requests in flight" in err
        first = applied(server)
        delivered = len(first)
        assert 50 <= delivered < n
        assert f"Interrupted: delivered {delivered:,} of {n:,} lines" in out
        assert f"0 invalid, {n - delivered:,} not delivered" in out
        assert "not sent" in out
        # Every line not delivered is in the failures file, with the key it was sent with.
        lines = failures.read_text(encoding="utf-8").splitlines()
        assert len(lines) == n - delivered
        assert all(json.loads(line)["key"].startswith("vxf-") for line in lines)
        assert len(reasons(failures)) == len(lines)
        assert {r["status"] for r in reasons(failures)} <= {"not_sent", "unread", "indeterminate"}

        resend = tmp_path / "resend.failures"
        again = [*cli(server, str(failures), "--failures", str(resend)), "--progress", "none"]
        assert main(again) == 0
        assert applied(server) == list(range(n))  # complete, each row once
        assert server.ledger.duplicates == 0
        assert resend.read_text(encoding="utf-8") == ""


def test_keyless_rerun_applies_nothing_twice(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", 200)
    with LocalServer() as server:
        for _ in range(2):
            assert main([*cli(server, str(source)), "--progress", "none"]) == 0
        assert applied(server) == list(range(200))
        assert server.ledger.replays == 200
        # The key is documented: the file's absolute path, the line number and its text.
        first_line = source.read_text(encoding="utf-8").splitlines()[0]
        expected = derived_key(f"file:{source.resolve()}", 1, first_line)
        keys = {e["idempotency_key"] for e in server.ledger.events}
        from ventryx._bulk._input import idempotency_key_for

        assert idempotency_key_for(expected) in keys

        # --no-derived-keys: random keys, so a re-run applies everything again.
        assert main([*cli(server, str(source)), "--no-derived-keys", "--progress", "none"]) == 0
        assert len(server.ledger.events) == 400


def test_key_namespace_replaces_the_path(tmp_path: Path) -> None:
    one = write_rows(tmp_path / "one.jsonl", 20)
    moved = tmp_path / "moved.jsonl"
    moved.write_bytes(one.read_bytes())
    with LocalServer() as server:
        for path in (one, moved):
            args = [*cli(server, str(path)), "--key-namespace", "import-7", "--progress", "none"]
            assert main(args) == 0
        assert applied(server) == list(range(20))  # the moved copy was replayed


def test_failures_equal_to_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_rows(tmp_path / "in.jsonl", 35)
    before = source.read_bytes()
    link = tmp_path / "link.jsonl"
    os.link(source, link)
    with LocalServer() as server:
        for failures in (source, link, tmp_path / "." / "in.jsonl"):
            assert main(cli(server, str(source), "--failures", str(failures))) == 2
            err = capsys.readouterr().err
            assert "is the input file; name another file" in err
        assert server.ledger.events == []
    assert source.read_bytes() == before


def test_unwritable_failures_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_rows(tmp_path / "in.jsonl", 3)
    with LocalServer() as server:
        missing_dir = tmp_path / "no" / "such" / "dir" / "f.failures"
        assert main(cli(server, str(source), "--failures", str(missing_dir))) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ventryx: error: cannot write {missing_dir}: ")
        assert "Traceback" not in err
        assert main(cli(server, str(source), "--failures", str(tmp_path))) == 2
        assert "is a directory; name a file" in capsys.readouterr().err
        for bad in ("0", "5000"):
            assert main([*cli(server, str(source)), "--concurrency", bad]) == 2
            assert "--concurrency must be from 1 to 1024" in capsys.readouterr().err
        assert not (tmp_path / "in.jsonl.failures").exists()  # nothing written
        assert server.ledger.events == []  # refused before sending anything


def test_unreachable_api_stops_early_with_every_line_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 5000
    source = write_rows(tmp_path / "rows.jsonl", n)
    failures = tmp_path / "rows.failures"
    started = time.monotonic()
    code = main([*cli(dead_url(), str(source), "--failures", str(failures)), "--progress", "none"])
    assert code == 1
    assert time.monotonic() - started < 30  # not hours: stopped after 50 failures in a row
    out, err = capsys.readouterr()
    assert "stopped after 50 connection failures in a row" in err
    assert f"Stopped: delivered 0 of {n:,} lines" in out
    lines = failures.read_text(encoding="utf-8").splitlines()
    assert len(lines) == n
    assert sorted(json.loads(line)["data"]["i"] for line in lines) == list(range(n))


def test_every_reason_is_kept_and_the_bar_counts_invalid_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.dumps({"type": "ok", "data": {"i": 0}})]
    rows += [f'{{"type": "broken", "data": {i}' for i in range(12)]  # invalid JSON
    rows += [json.dumps({"type": "ok", "data": {"i": 1}, "ts": 1, "source": "crm"})]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    failures = tmp_path / "mixed.failures"
    with LocalServer() as server:
        args = [*cli(server, str(source), "--failures", str(failures)), "--progress", "plain"]
        assert main(args) == 1
        assert applied(server) == [0, 1]  # the extra fields were ignored, not rejected
    out, err = capsys.readouterr()
    assert "line 14: ignoring field(s) 'source', 'ts'" in err
    assert "... and 7 more" in err
    bar = next(line for line in err.splitlines() if line.startswith("emitting mixed.jsonl"))
    assert "14/14" in bar
    assert "invalid 12" in bar
    assert "not delivered" not in bar  # invalid lines are not "not delivered" events
    assert "12 invalid, 0 not delivered" in out
    assert "1 lines had other fields" in out
    kept = reasons(failures)
    assert [r["line"] for r in kept] == list(range(2, 14))
    assert all(r["status"] == "invalid" and r["reason"].startswith("invalid JSON") for r in kept)
    assert failures.read_text(encoding="utf-8").splitlines() == rows[1:13]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # renamed, not left


def test_not_sent_reasons_read_as_sentences_and_401_records_every_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_rows(tmp_path / "rows.jsonl", 100, keyed=True)
    failures = tmp_path / "rows.failures"
    with LocalServer() as server:
        args = cli(server, str(source), "--failures", str(failures), key="vx_wrong")
        assert main([*args, "--concurrency", "2", "--json"]) == 1
        assert server.ledger.events == []
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["stopped_by"]["type"] == "AuthenticationError"
    assert summary["lines"] == 100
    lines = failures.read_text(encoding="utf-8").splitlines()
    # Keyed lines are written verbatim, in the order their outcomes came.
    assert sorted(lines) == sorted(source.read_text(encoding="utf-8").splitlines())
    texts = [r["reason"] for r in reasons(failures)]
    assert not any("not_sent: not_sent" in text for text in texts)
    assert any(text.startswith("rejected: AuthenticationError (HTTP 401") for text in texts)
    assert any(text.startswith("not sent: the run stopped") for text in texts)
    rejected = [r for r in reasons(failures) if r["status"] == "rejected"]
    assert rejected[0]["error"]["status_code"] == 401
    assert "vx_wrong" not in out + err + "".join(texts)


def test_transport_choice(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", 50)
    with LocalServer() as server:
        for transport in ("default", "aiohttp"):
            args = [*cli(server, str(source)), "--transport", transport, "--progress", "none"]
            assert main(args) == 0
        assert applied(server) == list(range(50))  # the second run was replayed
    assert main([*cli(server, str(source)), "--transport", "curl"]) == 2


def test_an_incomplete_failures_file_never_replaces_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ventryx._cli import _emit_file

    source = write_rows(tmp_path / "rows.jsonl", 10)
    failures = tmp_path / "rows.failures"
    failures.write_text("previous\n", encoding="utf-8")

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_emit_file.FileRun, "finish", interrupted)
    with LocalServer() as server:
        assert main(cli(server, str(source), "--failures", str(failures))) == 130
    assert f"{failures} was not written" in capsys.readouterr().err
    assert failures.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.failures", "rows.jsonl"]

"""The ``ventryx`` command line end to end against the local server.

Most tests call ``main([...])`` in-process; a few run ``python -m ventryx`` as a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ventryx.__main__ import main
from ventryx.testing import DEFAULT_TEST_KEY, LocalServer

ONBOARDING = {
    "name": "User onboarding",
    "trigger": {"event": "user.registered"},
    "steps": [{"type": "send_notification", "channel": "email", "template": "welcome"}],
}
WRONG_KEY = "vx_wrong_secret_key_123"


def cli(server: LocalServer, *args: str) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", server.api_key, *args]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_workflows_create_list_show(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "workflow.json"
    spec.write_text(json.dumps(ONBOARDING), encoding="utf-8")
    assert main(cli(server, "workflows", "create", str(spec), "--json")) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["id"].startswith("wf_")
    assert created["steps"] == ONBOARDING["steps"]

    assert main(cli(server, "workflows", "create", str(spec))) == 0
    assert capsys.readouterr().out.startswith("Created workflow wf_")

    assert main(cli(server, "workflows", "list", "--per-page", "1", "--json")) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["meta"] == {"total": 2, "page": 1, "per_page": 1}
    assert [wf["id"] for wf in page["data"]] == [created["id"]]

    assert main(cli(server, "workflows", "list", "--per-page", "1", "--all", "--json")) == 0
    assert len(json.loads(capsys.readouterr().out)["data"]) == 2

    assert main(cli(server, "workflows", "list", "--per-page", "1")) == 0
    out = capsys.readouterr().out
    assert f"{created['id']}  'User onboarding'  on user.registered  1 step" in out
    assert "page 1 of 2, 2 in all" in out

    assert main(cli(server, "workflows", "show", created["id"])) == 0
    out = capsys.readouterr().out
    assert f"id:         {created['id']}" in out
    assert '1. send_notification {"channel": "email", "template": "welcome"}' in out

    assert main(cli(server, "workflows", "show", created["id"], "--json")) == 0
    assert json.loads(capsys.readouterr().out) == created
    assert len(server.ledger.workflow_writes) == 2


def test_events_emit(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    data = {"user_id": "usr_12345", "plan": "pro"}
    args = cli(server, "events", "emit", "user.registered", "--data", json.dumps(data), "--json")
    assert main(args) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["type"] == "user.registered"
    assert event["data"] == data
    assert [e["id"] for e in server.ledger.events] == [event["id"]]

    assert main(cli(server, "events", "emit", "user.deleted")) == 0
    assert capsys.readouterr().out.startswith("Emitted event evt_")


def test_wrong_key_is_one_line_on_stderr(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--base-url", server.base_url, "--api-key", WRONG_KEY, "workflows", "list"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "ventryx: error: AuthenticationError (HTTP 401, code authentication_failed"
    )
    assert "request id req_" in err
    assert err.count("\n") == 1
    assert WRONG_KEY not in out + err


def test_not_found_and_bad_input(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(server, "workflows", "show", "wf_missing")) == 1
    assert "NotFoundError (HTTP 404, code not_found" in capsys.readouterr().err
    assert main(cli(server, "events", "emit", "x", "--data", "[1]")) == 2
    assert "--data must be a JSON object" in capsys.readouterr().err
    assert main(cli(server, "workflows", "create", str(tmp_path / "missing.json"))) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(cli(server, "workflows", "nope")) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert server.ledger.events == []


def test_no_api_key_is_a_usage_error(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VENTRYX_API_KEY", raising=False)
    assert main(["--base-url", server.base_url, "workflows", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ventryx: error: no API key: set VENTRYX_API_KEY or pass --api-key")
    assert "api_key=" not in err
    assert DEFAULT_TEST_KEY in err


@pytest.mark.slow  # seconds of wall clock, the same on every Python: run once
def test_emit_file_delivers_every_valid_line_once(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    invalid: list[str] = []
    for n in range(10_000):
        if n % 1000 == 7:
            bad = ['{"type": "import.row", "data": ', '{"data": {"n": 1}}', '"just a string"']
            line = bad[n // 1000 % 3]
            invalid.append(line)
        elif n % 1000 == 500:
            line = json.dumps({"type": "import.row", "data": [n]})  # data must be an object
            invalid.append(line)
        else:
            line = json.dumps({"type": "import.row", "data": {"n": n}})
        lines.append(line)
    source = write_lines(tmp_path / "events.jsonl", lines)
    failures = tmp_path / "failed.jsonl"

    args = ["events", "emit-file", str(source), "--failures", str(failures), "--progress", "plain"]
    assert main(cli(server, *args, "--concurrency", "16")) == 1
    out, err = capsys.readouterr()

    valid = len(lines) - len(invalid)
    applied = [e["data"]["n"] for e in server.ledger.events]
    assert len(applied) == valid
    assert len(set(applied)) == valid
    assert server.ledger.duplicates == 0
    assert failures.read_text(encoding="utf-8").splitlines() == invalid
    assert f"Delivered {valid:,} of 10,000 lines" in out
    assert f"{len(invalid)} invalid, 0 not delivered" in out
    assert "line 8: invalid JSON" in err
    assert "emitting events.jsonl [##############################] 10,000/10,000" in err


def test_emit_file_clean_exits_zero_and_key_field_makes_reruns_safe(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"id": f"row-{n}", "type": "import.row", "data": {"n": n}}) for n in range(300)
    ]
    source = write_lines(tmp_path / "clean.jsonl", lines)
    args = ["events", "emit-file", str(source), "--key-field", "id", "--json"]
    for _ in range(2):
        assert main(cli(server, *args)) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["delivered"] == 300
        assert summary["invalid"] == 0
    assert len(server.ledger.events) == 300  # the second run was replayed, not applied
    assert server.ledger.replays == 300
    default_failures = tmp_path / "clean.jsonl.failures"
    assert default_failures.read_text(encoding="utf-8") == ""


def test_emit_file_writes_rejected_events(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server refuses a body over its limit (413): the line is rejected, not retried.
    big = json.dumps({"type": "import.row", "data": {"blob": "x" * 2_000_000}})
    ok = json.dumps({"type": "import.row", "data": {"n": 1}})
    source = write_lines(tmp_path / "mixed.jsonl", [ok, big])
    failures = tmp_path / "mixed.failures"
    # httpx: aiohttp warns (ResourceWarning, an error under pytest) about a large bytes body.
    args = ["emit-file", str(source), "--failures", str(failures), "--transport", "default"]
    code = main(cli(server, "events", *args, "--no-derived-keys"))
    assert code == 1
    assert failures.read_text(encoding="utf-8") == big + "\n"
    out, err = capsys.readouterr()
    assert "0 invalid, 1 not delivered" in out
    assert "line 2: rejected: PayloadTooLargeError (HTTP 413" in err
    assert len(server.ledger.events) == 1


def run_cli(
    server: LocalServer, *args: str, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VENTRYX_API_KEY": api_key or server.api_key,
        "VENTRYX_BASE_URL": server.base_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "ventryx", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subprocess_reads_the_environment(server: LocalServer) -> None:
    emitted = run_cli(server, "events", "emit", "user.registered", "--json")
    assert emitted.returncode == 0, emitted.stderr
    event_id = json.loads(emitted.stdout)["id"]
    assert [e["id"] for e in server.ledger.events] == [event_id]

    listed = run_cli(server, "workflows", "list")
    assert listed.returncode == 0
    assert listed.stdout == "page 1 of 1, 0 in all\n"


def test_subprocess_wrong_key_has_no_traceback(server: LocalServer) -> None:
    result = run_cli(server, "workflows", "list", api_key=WRONG_KEY)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ventryx: error: AuthenticationError")
    assert "Traceback" not in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr


def test_serve_subcommand_serves() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "ventryx", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("Ventryx local server ready at http://127.0.0.1:")
            base_url = line.rsplit(" ", 1)[1].strip()
            export = proc.stdout.readline()
            assert export == (
                f"export VENTRYX_API_KEY=vx_test_local_key VENTRYX_BASE_URL={base_url}\n"
            )
            args = ["--base-url", base_url, "--api-key", "vx_test_local_key", "workflows", "list"]
            assert main(args) == 0
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert proc.returncode == 0


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ventryx ")
    assert main(["events", "emit-file", "--help"]) == 0
    assert "--key-field" in capsys.readouterr().out


def test_events_list_and_show(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(3):
        kind = "user.registered" if n < 2 else "order.paid"
        assert main(cli(server, "events", "emit", kind, "--data", json.dumps({"n": n}))) == 0
    capsys.readouterr()
    assert main(cli(server, "events", "list", "--per-page", "2")) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert "page 1 of 2, 3 in all  (--all for every page)" in out[-1]
    assert main(cli(server, "events", "list", "--type", "order.paid", "--json")) == 0
    page = json.loads(capsys.readouterr().out)
    assert [e["data"] for e in page["data"]] == [{"n": 2}]
    event_id = page["data"][0]["id"]
    assert main(cli(server, "events", "list", "--all", "--per-page", "1")) == 0
    assert capsys.readouterr().out.endswith("3 events\n")
    assert main(cli(server, "events", "show", event_id)) == 0
    assert capsys.readouterr().out.startswith(f"{event_id}  order.paid  ")
    assert main(cli(server, "events", "show", event_id, "--json")) == 0
    assert json.loads(capsys.readouterr().out)["id"] == event_id
    assert main(cli(server, "events", "show", "evt_missing")) == 1
    assert "NotFoundError (HTTP 404" in capsys.readouterr().err


def test_workflows_update_and_delete(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "workflow.json"
    spec.write_text(json.dumps(ONBOARDING), encoding="utf-8")
    assert main(cli(server, "workflows", "create", str(spec), "--json")) == 0
    wf_id = json.loads(capsys.readouterr().out)["id"]
    change = tmp_path / "rename.json"
    change.write_text(json.dumps({"name": "Renamed"}), encoding="utf-8")
    assert main(cli(server, "workflows", "update", wf_id, str(change))) == 0
    assert capsys.readouterr().out == f"Updated workflow {wf_id} (name)\n"
    assert main(cli(server, "workflows", "show", wf_id, "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "Renamed"
    assert shown["steps"] == ONBOARDING["steps"]  # untouched
    change.write_text(json.dumps({"colour": "red"}), encoding="utf-8")
    assert main(cli(server, "workflows", "update", wf_id, str(change))) == 2
    assert "unknown field(s) colour" in capsys.readouterr().err
    change.write_text("{}", encoding="utf-8")
    assert main(cli(server, "workflows", "update", wf_id, str(change))) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert main(cli(server, "workflows", "delete", wf_id)) == 0
    assert capsys.readouterr().out == f"Deleted workflow {wf_id}\n"
    assert main(cli(server, "workflows", "delete", wf_id, "--json")) == 1
    assert main(cli(server, "workflows", "list")) == 0
    assert capsys.readouterr().out.endswith("0 in all\n")


def test_json_makes_errors_json(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(server, "workflows", "show", "wf_missing", "--json")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    error = json.loads(err)["error"]
    assert error["type"] == "NotFoundError"
    assert error["status_code"] == 404
    assert error["code"] == "not_found"
    assert error["request_id"].startswith("req_")
    assert main(cli(server, "events", "emit", "x", "--data", "[1]", "--json")) == 2
    assert json.loads(capsys.readouterr().err)["error"]["message"].startswith("--data must")
    args = ["--base-url", server.base_url, "--api-key", WRONG_KEY, "--json", "workflows", "list"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert json.loads(err)["error"]["status_code"] == 401
    assert WRONG_KEY not in err


def test_page_past_the_end_says_so(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(server, "events", "emit", "x")) == 0
    capsys.readouterr()
    assert main(cli(server, "workflows", "list", "--page", "99")) == 0
    assert (
        capsys.readouterr().out == "page 99 is past the end: 0 workflows in all, on 1 page of 20\n"
    )
    assert main(cli(server, "events", "list", "--page", "99", "--per-page", "5")) == 0
    assert capsys.readouterr().out == "page 99 is past the end: 1 event in all, on 1 page of 5\n"


def test_cli_knows_the_local_key_without_importing_the_server() -> None:
    from ventryx._cli import _commands

    assert _commands.DEFAULT_TEST_KEY == DEFAULT_TEST_KEY

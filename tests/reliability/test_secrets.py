"""The API key never leaks: not in reprs, messages, tracebacks, logs, output or headers.

One distinctive key drives every operation and every error path with DEBUG logging on (the
``VENTRYX_LOG=debug`` handler and caplog at DEBUG on the root logger, so httpx, httpcore and
the local server's own loggers are captured too), through the async and the sync client; every
text produced is collected and scanned. ``tests/test_client.py`` checks the basic case.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

import ventryx
import ventryx._logging as vlog
from ventryx.testing import Fault, FaultRule, LocalServer

pytestmark = [pytest.mark.reliability, pytest.mark.anyio, pytest.mark.timeout(60)]

SECRET = "vx_live_R3L14B1L1TY_k3y_f00dface_do_not_leak"
STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}


@pytest.fixture
def debug_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``VENTRYX_LOG=debug`` read afresh, its stderr handler removed afterwards."""
    monkeypatch.setenv("VENTRYX_LOG", "debug")
    monkeypatch.setattr(vlog, "_configured", False)
    logger = logging.getLogger("ventryx")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for name, value in vars(exc).items():
        texts.append(f"{name}={value!r}")
        headers = getattr(value, "headers", None)
        if headers is not None:
            texts.append(repr(headers))  # httpx masks Authorization in a repr of headers
    return texts


async def _expect_error(texts: list[str], call: Any, cls: type[BaseException]) -> None:
    with pytest.raises(cls) as info:
        await call()  # called inside: the sync client's list() raises at once
    texts += _exception_texts(info.value)


async def test_the_key_appears_in_no_output(
    make_client,
    client_kind: str,
    server: LocalServer,
    refused_port: int,
    debug_env: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    server.configure(api_keys=frozenset({SECRET}))
    texts: list[str] = []
    client = make_client(api_key=SECRET, max_retries=2)
    texts.append(repr(client))
    with anyio.fail_after(30):
        # every operation
        workflow = await client.workflows.create(name="s", trigger={"event": "e"}, steps=[STEP])
        results: list[Any] = [
            workflow,
            await client.workflows.list(),
            await client.workflows.retrieve(workflow.id),
            await client.workflows.update(workflow.id, name="t"),
            await client.workflows.delete(workflow.id),
        ]
        event = await client.events.emit(type="t", data={"k": "v"})
        results += [event, await client.events.list(), await client.events.retrieve(event.id)]
        for result in results:
            texts += [repr(result), str(result), repr(getattr(result, "raw_response", None))]

        # every error path
        wrong = make_client(api_key=SECRET + "_revoked")  # contains the key: a leak would show
        await _expect_error(texts, wrong.events.list, ventryx.AuthenticationError)
        await _expect_error(
            texts, lambda: client.events.retrieve("evt_none"), ventryx.NotFoundError
        )
        server.configure(faults=[FaultRule("*", fault=Fault("status", status=503))])
        await _expect_error(
            texts, lambda: client.events.emit(type="t"), ventryx.InternalServerError
        )
        server.configure(faults=[FaultRule("*", fault=Fault("delay", delay=1.0))])
        slow = make_client(api_key=SECRET, timeout=0.1, max_retries=1)
        await _expect_error(texts, slow.workflows.list, ventryx.APITimeoutError)
        server.configure(faults=[FaultRule("*", fault=Fault("reset_before"))])
        await _expect_error(texts, lambda: client.events.emit(type="t"), ventryx.APIConnectionError)
        server.configure(faults=[])
        refused = make_client(api_key=SECRET, base_url=f"http://127.0.0.1:{refused_port}/v1")
        await _expect_error(texts, refused.events.list, ventryx.APIConnectionError)

    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.__dict__) for record in caplog.records]
    texts += [repr(r) for r in server.ledger.requests]  # the server's own record of requests
    user_agents = {r.headers.get("user-agent", "") for r in server.ledger.requests}
    texts += sorted(user_agents)
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]

    # The scan saw what it was meant to see...
    assert any("POST /v1/events -> 503" in t for t in texts), "DEBUG logs were captured"
    assert "-> 503" in captured.err, "the VENTRYX_LOG handler wrote to stderr"
    if client_kind != "aiohttp":  # httpx's own log lines (aiohttp writes none)
        assert any(r.name.startswith("httpx") for r in caplog.records)
    assert all(ua.startswith("ventryx-python/") for ua in user_agents)
    assert any("Connection refused" in t or "connect" in t.lower() for t in texts)
    # ...and the key is in none of it.
    leaks = [t for t in texts if SECRET in t]
    assert not leaks, leaks[0][:500]


def _read_line(stream: Any, deadline: float) -> str:
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            return str(stream.readline())
    raise AssertionError("the local server did not print its address in time")


def test_the_server_command_line_does_not_print_the_key() -> None:
    env = {**os.environ, "VENTRYX_LOG": "debug", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "ventryx.testing", "--port", "0", "--api-key", SECRET]
    proc = subprocess.Popen(
        [*args, "--fault", "GET /v1/events:status=503:0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = _read_line(proc.stdout, time.monotonic() + 20)
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=10) as http:
            good = {"Authorization": f"Bearer {SECRET}"}
            bad = {"Authorization": f"Bearer {SECRET}x"}
            statuses = {http.get("/v1/events", headers=good).status_code for _ in range(6)}
            assert http.post("/v1/events", headers=good, json={"type": "t"}).status_code == 201
            assert http.get("/v1/events", headers=bad).status_code in (401, 503)
            assert http.post("/v1/events", headers=good, content=b"{").status_code == 400
        assert statuses <= {200, 503}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert SECRET not in line + out + err

"""The crash test: a real ASGI app under uvicorn enqueues from its handler; ``kill -9`` mid-load.

N concurrent requests hit the app; once some are acknowledged (the client got a 2xx), the
server process is killed with SIGKILL, then started again on the same outbox file. The local
Ventryx server's ledger must show every acknowledged event applied exactly once, and no event
whose request was refused (the app was not there to store it). A request cut by the kill is
ambiguous: it may have been stored before the answer was lost, so it may be applied (once).
Also with the API down while the load runs (503s) and under a rate limit (429s).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from ventryx.testing import Fault, FaultRule, LocalServer, RateLimit

pytest.importorskip("uvicorn")

APP = textwrap.dedent(
    """
    import json, os
    from ventryx import AsyncVentryx, RetryPolicy

    state = {}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    policy = RetryPolicy(initial_delay=0.02, max_delay=0.2)
                    client = AsyncVentryx(max_retries=1, retry_policy=policy)
                    emitter = client.events.emitter(
                        outbox=os.environ["OUTBOX"], concurrency=8, drain_timeout=2.0
                    )
                    await emitter.__aenter__()
                    state.update(client=client, emitter=emitter)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["emitter"].__aexit__(None, None, None)
                    await state["client"].aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        emitter = state["emitter"]
        status, payload = 200, {}
        if scope["path"] == "/enqueue":
            n = int(scope["query_string"].decode().partition("=")[2])
            payload["key"] = emitter.enqueue(type="crash.test", data={"n": n}, key=f"req-{n}")
        elif scope["path"] == "/flush":
            payload["ok"] = await emitter.flush(timeout=15)
            payload["pending"] = emitter.stats.pending
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
    """
)

N = 240
KILL_AFTER = 80  # acknowledged requests before the kill


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """``uvicorn crash_app:app`` in a subprocess, on the outbox file."""

    def __init__(self, folder: Path, api: LocalServer) -> None:
        (folder / "crash_app.py").write_text(APP, encoding="utf-8")
        self.folder = folder
        self.env = {
            **os.environ,
            "VENTRYX_API_KEY": api.api_key,
            "VENTRYX_BASE_URL": api.base_url,
            "OUTBOX": str(folder / "outbox.db"),
        }
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "uvicorn", "crash_app:app", "--app-dir", str(self.folder)]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(command, env=self.env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.05)
            else:
                return
        raise RuntimeError("the app did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()  # reaped: its pid is dead, so its leases are reclaimed at once

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


def load(app: AppServer) -> tuple[set[int], set[int], set[int]]:
    """N concurrent requests; kill -9 the app once KILL_AFTER are acknowledged.

    Returns (acknowledged, refused, ambiguous) request numbers.
    """
    acked: set[int] = set()
    refused: set[int] = set()
    ambiguous: set[int] = set()
    lock = threading.Lock()
    killed = threading.Event()

    def one(client: httpx.Client, n: int) -> None:
        try:
            response = client.post(f"{app.url}/enqueue", params={"n": n})
        except httpx.ConnectError:
            with lock:
                refused.add(n)
            return
        except httpx.TransportError:
            with lock:
                ambiguous.add(n)
            return
        with lock:
            (acked if response.status_code == 200 else refused).add(n)
            if len(acked) >= KILL_AFTER and not killed.is_set():
                killed.set()
                app.kill()

    with (
        httpx.Client(timeout=10.0) as client,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        list(pool.map(lambda n: one(client, n), range(N)))
    assert killed.is_set()
    return acked, refused, ambiguous


@pytest.mark.parametrize("scenario", ["plain", "api_down", "rate_limited"])
def test_kill_9_mid_load_loses_no_acknowledged_event(tmp_path: Path, scenario: str) -> None:
    with LocalServer() as api:
        if scenario == "api_down":
            api.configure(faults=[FaultRule("POST /v1/events", fault=Fault("status", status=503))])
        if scenario == "rate_limited":
            api.configure(rate_limit=RateLimit(150, burst=5))
        app = AppServer(tmp_path, api)
        app.start()
        try:
            acked, refused, ambiguous = load(app)
            if scenario == "api_down":
                assert api.ledger.events == []  # everything acknowledged waits in the file
                api.configure(faults=())
            app.start()  # the same outbox file, a new process
            report = httpx.post(app.url + "/flush", timeout=30).json()
            assert report["ok"], report
        finally:
            app.stop()
        applied = collections.Counter(event["data"]["n"] for event in api.ledger.events)
        assert acked  # the test means something: requests were acknowledged before the kill
        assert refused | ambiguous  # and the kill cut the load
        assert acked <= set(applied)  # every acknowledged event applied...
        assert max(applied.values()) == 1  # ...exactly once
        assert set(applied) <= acked | ambiguous  # none whose request the app never stored
        assert not set(applied) & refused
        if scenario == "rate_limited":
            assert api.ledger.rate_limited > 0

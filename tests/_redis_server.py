"""A real ``redis-server`` for the tests: a free 127.0.0.1 port, a temporary dir, no persistence.

Absent binary: the tests skip with the reason, except in CI (``CI`` set), where they fail:
CI installs it (``.ci/install-redis``) and must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["RedisServer", "require_redis_server"]


def require_redis_server() -> str:
    """The path of ``redis-server``; skips (locally) or fails (in CI) when it is missing."""
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    why = "redis-server is not installed (apt-get install redis-server, or .ci/install-redis)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the Redis tests", pytrace=False)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``url`` points at database 0, ``kill`` ends it abruptly."""

    def __init__(self) -> None:
        self.binary = require_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="ventryx-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, same_port: bool = False) -> RedisServer:
        """Start it (again: on the same port with ``same_port``, as a server coming back)."""
        if not (same_port and self.port):
            self.port = _free_port()
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._dir.name]
        log = Path(self._dir.name) / "redis.log"
        self.proc = subprocess.Popen(
            [*args, "--logfile", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server did not start: {detail[-500:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

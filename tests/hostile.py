"""A hostile HTTP peer on raw sockets, scripted per connection (written apart from ventryx.testing).

``HostileServer(script)`` listens on 127.0.0.1; every accepted connection runs ``script(conn)``
in a thread of its own, so a trickle on one connection does not hold up the next. A script
reads requests with ``conn.request()`` and answers with raw bytes: correct HTTP, or headers
and bodies one byte per interval, a ``Content-Length`` that lies, bodies of hundreds of
megabytes, gzip bombs, invalid gzip/deflate, redirects, endless 429s. The scripts below build
the common cases; every one stops when the client hangs up or the server closes.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "HostileServer",
    "Request",
    "answer",
    "gzip_bomb",
    "json_body",
]

MiB = 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Conn:
    """One accepted connection, as a script sees it."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock = sock
        self.server = server
        self._buffer = b""

    @property
    def stopping(self) -> bool:
        return self.server.stopping.is_set()

    def request(self) -> Request | None:
        """The next request on this connection; None when the client closed it."""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self._recv()
            if not chunk:
                return None
            self._buffer += chunk
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = self._recv()
            if not chunk:
                return None
            rest += chunk
        body, self._buffer = rest[:length], rest[length:]
        url = urlsplit(target)
        request = Request(method, url.path, dict(parse_qsl(url.query)), headers, body)
        self.server.requests.append(request)
        return request

    def _recv(self) -> bytes:
        while not self.stopping:
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""

    def send(self, data: bytes) -> bool:
        """Send everything; False once the client has gone (or the server is closing)."""
        if self.stopping:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def trickle(self, data: Iterable[bytes], interval: float) -> bool:
        """Send piece by piece, ``interval`` seconds apart; False once the client has gone."""
        for piece in data:
            if not self.send(piece):
                return False
            if self.server.stopping.wait(interval):
                return False
        return True

    def stream(self, pieces: Iterable[bytes]) -> None:
        """Send as fast as the client reads, until the pieces end or the client goes."""
        for piece in pieces:
            if not self.send(piece):
                return


Script = Callable[[Conn], None]


@dataclass
class HostileServer:
    """A listener whose connections each run ``script`` (``scripts[i]`` for the i-th, then the
    last one again); counts connections and records requests."""

    script: Script | list[Script]
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            scripts = self.script if isinstance(self.script, list) else [self.script]
            script = scripts[min(self.connections, len(scripts) - 1)]
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(sock, script), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket, script: Script) -> None:
        sock.settimeout(0.05)
        with sock, contextlib.suppress(OSError):
            script(Conn(sock, self))

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- building answers -------------------------------------------------------------------------


def head(
    status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (), *, reason: str = "X"
) -> bytes:
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_body(document: Any) -> bytes:
    return json.dumps(document).encode()


def answer(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> bytes:
    """A whole, honest HTTP/1.1 answer that closes the connection."""
    fields = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    fields.setdefault("Content-Length", str(len(body)))
    return head(status, fields) + body


def each_request(make: Callable[[Request], bytes]) -> Script:
    """Answer every request of the connection with ``make(request)`` (keep-alive allowed)."""

    def script(conn: Conn) -> None:
        while (request := conn.request()) is not None:
            data = make(request)
            if not conn.send(data) or b"Connection: close" in data.split(b"\r\n\r\n")[0]:
                return

    return script


def constant(data: bytes) -> Script:
    return each_request(lambda _request: data)


# -- the hostile scripts ------------------------------------------------------------------------


def trickle_headers(interval: float) -> Script:
    """A status line, then header bytes one per ``interval``, never ending."""

    def script(conn: Conn) -> None:
        if conn.request() is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\n")
        conn.trickle(_forever(b"X-Slow: a\r\n"), interval)

    return script


def trickle_body(interval: float, *, chunked: bool = False) -> Script:
    """Headers at once, then the body one byte (or one chunk) per ``interval``, never ending."""

    def script(conn: Conn) -> None:
        if conn.request() is None:
            return
        if chunked:
            conn.send(
                head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            )
            conn.trickle(_forever(b"1\r\n \r\n", whole=True), interval)
        else:
            conn.send(head(200, {"Content-Type": "application/json", "Content-Length": str(10**6)}))
            conn.trickle(_forever(b" "), interval)

    return script


def _forever(unit: bytes, *, whole: bool = False) -> Iterator[bytes]:
    while True:
        if whole:
            yield unit
        else:
            for byte in unit:
                yield bytes([byte])


def huge_body(total: int, *, declare: bool = True, chunk: int = 64 * 1024) -> Script:
    """A 200 whose body is ``total`` bytes of JSON-ish filler, sent as fast as it is read."""

    def script(conn: Conn) -> None:
        if conn.request() is None:
            return
        fields = {"Content-Type": "application/json", "Connection": "close"}
        if declare:
            fields["Content-Length"] = str(total)
        conn.send(head(200, fields))
        block = b" " * chunk
        conn.stream(block for _ in range(total // chunk))

    return script


_BOMBS: dict[tuple[int, str], bytes] = {}


def gzip_bomb(inflated: int, coding: str = "gzip") -> bytes:
    """``inflated`` zero bytes compressed (about 1,000:1); ``"gzip, gzip"`` compresses twice."""
    key = (inflated, coding)
    if key not in _BOMBS:
        wbits = zlib.MAX_WBITS if coding == "deflate" else zlib.MAX_WBITS | 16
        data = _compress(b"\0" * MiB, inflated // MiB, wbits)
        if coding == "gzip, gzip":
            data = gzip.compress(data, 9)
        _BOMBS[key] = data
    return _BOMBS[key]


def _compress(block: bytes, times: int, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [packer.compress(block) for _ in range(times)]
    parts.append(packer.flush())
    return b"".join(parts)


def encoded(body: bytes, coding: str, status: int = 200) -> Script:
    """``body`` sent as is with ``Content-Encoding: coding`` (a bomb, or invalid data)."""
    return constant(answer(status, body, {"Content-Encoding": coding}))


def lying_length(declared: int, body: bytes) -> Script:
    """A ``Content-Length`` of ``declared`` with ``body`` (shorter, or longer) after it."""

    def script(conn: Conn) -> None:
        if conn.request() is None:
            return
        conn.send(
            head(200, {"Content-Type": "application/json", "Content-Length": str(declared)}) + body
        )
        # Keep the connection open a moment, as a peer that lies would.
        conn.server.stopping.wait(0.2)

    return script


def redirect(location: str, status: int = 302) -> Script:
    return constant(answer(status, b"", {"Location": location}))


def rate_limited(retry_after: str | None) -> Script:
    """A 429 for every request, forever."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    body = json_body({"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
    return constant(answer(429, body, headers))


def echo_key(status: int = 401) -> Script:
    """An error whose message repeats the Authorization header it got (a leaky server)."""

    def make(request: Request) -> bytes:
        said = request.headers.get("authorization", "")
        body = json_body({"error": {"code": "authentication_failed", "message": f"bad key {said}"}})
        return answer(status, body)

    return each_request(make)


def pages(make: Callable[[Request], Any]) -> Script:
    """Answer every request with the JSON document ``make(request)`` (keep-alive)."""

    def respond(request: Request) -> bytes:
        body = json_body(make(request))
        return (
            head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}) + body
        )

    return each_request(respond)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` for up to ``timeout`` seconds (for server-side effects)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()

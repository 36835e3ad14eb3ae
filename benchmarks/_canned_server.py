"""A canned-response HTTP/1.1 server for the benchmarks: ``python -m benchmarks._canned_server``.

Every ``POST`` (whatever its path) gets the same ``201`` event document, every ``GET`` the same
``200`` page of five workflows (what ``workflows.list`` reads), over keep-alive connections;
``GET /__connections`` answers ``{"accepted": N}``, the TCP connections accepted so far.
It does the least work an HTTP/1.1 server can (find the end of the head,
read ``Content-Length``, skip the body, write a precomputed answer), so that in a benchmark the
client is what is measured. It runs in its own process; the client's CPU time never includes it.
It prints ``http://127.0.0.1:PORT`` on stdout once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

__all__ = ["BODY", "PAGE", "PAGE_RESPONSE", "RESPONSE", "main"]

BODY = (
    b'{"data": {"id": "evt_1", "type": "user.registered", "data": {}, '
    b'"created_at": "2026-01-01T00:00:00Z"}}'
)
RESPONSE = (
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"X-Request-Id: req_1\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + BODY
)
_WORKFLOW = (
    b'{"id": "wf_%d", "name": "onboarding", "trigger": {"type": "event", '
    b'"event": "user.registered"}, "steps": [{"type": "webhook", '
    b'"url": "https://example.com/hook"}], "created_at": "2026-01-01T00:00:00Z"}'
)
PAGE = (
    b'{"data": ['
    + b", ".join(_WORKFLOW % i for i in range(5))
    + b'], "meta": {"total": 5, "page": 1, "per_page": 5}}'
)
PAGE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(PAGE)).encode() + b"\r\n"
    b"X-Request-Id: req_2\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + PAGE
)
_STATS_PATH = b"GET /__connections "
_HEAD_END = b"\r\n\r\n"
_accepted = 0


def _stats_response() -> bytes:
    body = b'{"accepted": %d}' % _accepted
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(body)
    ) + body


_LENGTH = b"\r\ncontent-length:"


class _Canned(asyncio.Protocol):
    """Answers each complete request in the buffer; pipelined requests get one write."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        global _accepted  # noqa: PLW0603 - the process's one counter
        _accepted += 1
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        answers: list[bytes] = []
        while True:
            end = buffer.find(_HEAD_END)
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(_LENGTH)
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + len(_LENGTH) : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            if buffer.startswith(b"GET "):
                stats = buffer.startswith(_STATS_PATH)
                answers.append(_stats_response() if stats else PAGE_RESPONSE)
            else:
                answers.append(RESPONSE)
            buffer = buffer[total:]
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(b"".join(answers))


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Canned, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://{host}:{bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

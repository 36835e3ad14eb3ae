"""Rate limiting of the local server: each Retry-After form, headers, and bucket accuracy."""

from __future__ import annotations

import email.utils
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import anyio
import httpx
import pytest

from ventryx.testing import DEFAULT_TEST_KEY, Fault, FaultRule, LocalServer, RateLimit


def post_twice(server: LocalServer) -> tuple[httpx.Response, httpx.Response]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        first = client.post("/events", json={"type": "a", "data": {"n": 1}})
        second = client.post("/events", json={"type": "a", "data": {"n": 2}})
    return first, second


def assert_429(resp: httpx.Response) -> None:
    assert resp.status_code == 429
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"


def test_retry_after_seconds(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(0.5, retry_after="seconds"))
    first, second = post_twice(server)
    assert first.status_code == 201
    assert_429(second)
    assert second.headers["retry-after"] == "2"


def test_retry_after_fractional(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(4))  # fractional is the default
    _, second = post_twice(server)
    assert_429(second)
    value = second.headers["retry-after"]
    assert re.fullmatch(r"\d+\.\d{3}", value)
    assert 0.0 < float(value) <= 0.25


def test_retry_after_http_date(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(0.2, retry_after="http-date"))
    before = datetime.now(timezone.utc)
    _, second = post_twice(server)
    assert_429(second)
    value = second.headers["retry-after"]
    assert value.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(value)
    # the wait (~5 s) rounded up to the next whole second
    assert before + timedelta(seconds=4) <= when <= before + timedelta(seconds=7)


def test_retry_after_milliseconds(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(2, retry_after="milliseconds"))
    _, second = post_twice(server)
    assert_429(second)
    assert "retry-after" not in second.headers
    assert 1 <= int(second.headers["retry-after-ms"]) <= 500


def test_retry_after_absent(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(2, retry_after="absent"))
    _, second = post_twice(server)
    assert_429(second)
    assert "retry-after" not in second.headers
    assert "retry-after-ms" not in second.headers


def test_rate_limit_headers_and_burst(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(0.1, burst=3))
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        responses = [client.get("/workflows") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "3" for r in responses)
    # seconds until the bucket is full again, rounded up
    assert [r.headers["x-ratelimit-reset"] for r in responses] == ["10", "20", "30", "30"]
    assert server.ledger.rate_limited == 1
    assert server.ledger.attempts["GET /v1/workflows"] == 4


def test_429_comes_before_auth_and_counts_as_an_attempt(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(0.1))
    url = server.base_url + "/events"
    assert httpx.get(url).status_code == 401  # spends the only token
    assert_429(httpx.get(url))
    assert httpx.get(server.url + "/v1/nope").status_code == 404  # routing comes first
    assert server.ledger.attempts["GET /v1/events"] == 2
    assert [r.status for r in server.ledger.requests] == [401, 429, 404]


def test_admin_routes_are_not_limited(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(0.1))
    for _ in range(5):
        assert httpx.get(server.url + "/_testing/ledger").status_code == 200
    assert httpx.post(server.url + "/_testing/reset").status_code == 200


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("0.2", "0.2"),
        ("1", "1"),
        ("Wed, 21 Oct 2037 07:28:00 GMT", "Wed, 21 Oct 2037 07:28:00 GMT"),
    ],
)
def test_rate_limited_fault_sends_retry_after_verbatim(
    server: LocalServer, retry_after: str, expected: str
) -> None:
    server.configure(
        faults=[
            FaultRule("POST /v1/events", sequence=[Fault("rate_limited", retry_after=retry_after)])
        ]
    )
    first, second = post_twice(server)
    assert_429(first)
    assert first.headers["retry-after"] == expected
    assert second.status_code == 201
    assert len(server.ledger.events) == 1


def test_rate_limited_fault_without_header(server: LocalServer) -> None:
    server.configure(faults=[FaultRule("POST /v1/events", sequence=[Fault("rate_limited")])])
    first, _ = post_twice(server)
    assert_429(first)
    assert "retry-after" not in first.headers
    assert "retry-after-ms" not in first.headers


@pytest.fixture
def limited_server_url() -> Iterator[str]:
    """A rate-limited server in its own process, so the hammering threads here cannot
    starve it of the GIL (a stalled server under-admits and the count would measure that)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ventryx.testing", "--port", "0", "--no-record",
         "--rate-limit", "50", "--burst", "10"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        match = re.search(r"(http://\S+)/v1", proc.stdout.readline())
        assert match
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def pipelined_statuses(sock: socket.socket, requests: list[bytes]) -> list[int]:
    """Send ``requests`` in one write and read back their statuses, in order."""
    sock.sendall(b"".join(requests))
    buf = b""
    statuses: list[int] = []
    while len(statuses) < len(requests):
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1").split("\r\n")
            length = next(
                int(h.split(":")[1]) for h in head if h.lower().startswith("content-length")
            )
            if len(buf) >= head_end + 4 + length:
                statuses.append(int(head[0].split(" ")[1]))
                buf = buf[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection"
        buf += chunk
    return statuses


def test_rate_limit_is_accurate_under_load(limited_server_url: str) -> None:
    # A full token bucket loses the refill time until the next arrival, so sparse arrivals
    # would measure the client, not the limiter: pipelined requests from a few threads keep one
    # waiting at the server, and a bucket of 10 (0.2 s of tokens) rides out the scheduling gaps
    # of a loaded machine.
    rate, burst, batch = 50.0, 10, 32
    host, port = limited_server_url.removeprefix("http://").split(":")
    counts = {"admitted": 0, "refused": 0, "other": 0}
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + 3.0
    last = [start]

    def hammer(worker: int) -> None:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            n = 0
            while time.perf_counter() < deadline:
                requests = []
                for _ in range(batch):
                    body = json.dumps({"type": "h", "data": {"w": worker, "n": n}}).encode()
                    n += 1
                    requests.append(
                        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                        b"Content-Length: %d\r\n\r\n%s"
                        % (DEFAULT_TEST_KEY.encode(), len(body), body)
                    )
                statuses = pipelined_statuses(sock, requests)
                with lock:
                    for status in statuses:
                        counts[{201: "admitted", 429: "refused"}.get(status, "other")] += 1
                    last[0] = time.perf_counter()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    most = rate * (last[0] - start) + burst  # what the bucket can have admitted at most
    assert counts["other"] == 0
    assert counts["refused"] > 10 * counts["admitted"]  # the limit really was exceeded
    # Never more than the limit allows; the exact counts are tests/test_limiters.py's, on a
    # fake clock: here a starved client (a loaded machine) leaves the bucket full for a while,
    # and those tokens are lost, so the lower bound is loose.
    assert 0.5 * most <= counts["admitted"] <= most + 1, (counts, most)
    snapshot = httpx.get(limited_server_url + "/_testing/ledger").json()["data"]
    assert snapshot["event_count"] == counts["admitted"]
    assert snapshot["rate_limited"] == counts["refused"]


@pytest.mark.anyio
async def test_rate_limit_with_async_client(server: LocalServer) -> None:
    server.configure(rate_limit=RateLimit(1, burst=2, retry_after="seconds"))
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        statuses: list[int] = []

        async def one(i: int) -> None:
            resp = await client.post("/events", json={"type": "a", "data": {"i": i}})
            statuses.append(resp.status_code)

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
    assert sorted(statuses) == [201, 201, 429, 429, 429, 429]

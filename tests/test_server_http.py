"""The HTTP/1.1 layer of the local server seen from raw sockets, and the ASGI adapter."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

import ventryx
from ventryx.testing import (
    DEFAULT_TEST_KEY,
    Fault,
    FaultRule,
    LocalServer,
    ServerConfig,
    SimulatedConnectionError,
    create_app,
)

AUTH = f"Authorization: Bearer {DEFAULT_TEST_KEY}\r\n"
CHUNKED_HEAD = (
    f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n".encode()
)


def connect(server: LocalServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed) from ``sock``, reading exactly its bytes."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed before a full head: {head!r}")
        head += byte
    lines = head.decode("latin-1").strip().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return status, headers, body


def assert_closed(sock: socket.socket) -> None:
    assert sock.recv(1024) == b""


def post_event(body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_keep_alive_and_pipelining(server: LocalServer) -> None:
    with connect(server) as sock:
        sock.sendall(post_event(b'{"type":"a"}'))
        assert read_response(sock)[0] == 201
        # two pipelined requests in one write: answered in order on the same connection
        sock.sendall(post_event(b'{"type":"b"}') + post_event(b'{"type":"c"}'))
        first = read_response(sock)
        second = read_response(sock)
        assert json.loads(first[2])["data"]["type"] == "b"
        assert json.loads(second[2])["data"]["type"] == "c"
        # a body arriving in pieces
        body = b'{"type":"d","data":{"x":1}}'
        sock.sendall(post_event(body)[:-10])
        sock.sendall(body[-10:])
        assert read_response(sock)[0] == 201
    assert [e["type"] for e in server.ledger.events] == ["a", "b", "c", "d"]


def test_connection_close_is_honoured(server: LocalServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            f"GET /v1/events HTTP/1.1\r\nHost: x\r\n{AUTH}Connection: close\r\n\r\n".encode()
        )
        status, headers, _ = read_response(sock)
        assert status == 200
        assert headers["connection"] == "close"
        assert_closed(sock)


def test_http_10_closes_by_default(server: LocalServer) -> None:
    with connect(server) as sock:
        sock.sendall(f"GET /v1/events HTTP/1.0\r\n{AUTH}\r\n".encode())
        assert read_response(sock)[0] == 200
        assert_closed(sock)


def test_chunked_request_body(server: LocalServer) -> None:
    body = b'{"type":"chunked","data":{"k":"v"}}'
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    with connect(server) as sock:
        sock.sendall(CHUNKED_HEAD + chunked)
        status, _, resp = read_response(sock)
        assert status == 201
        assert json.loads(resp)["data"]["data"] == {"k": "v"}


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v1/events\r\n\r\n",
        b"GET /v1/events HTTP/2.0\r\n\r\n",
        b"GET v1/events HTTP/1.1\r\n\r\n",
        b"GET /v1/events HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /v1/events HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_get_400(server: LocalServer, raw: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
        assert status == 400
        assert headers["x-request-id"].startswith("req_")
        assert json.loads(body)["error"]["code"] == "invalid_request"
        assert_closed(sock)
    assert server.ledger.events == []


def test_413_is_answered_before_the_body_arrives(server: LocalServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\n%sContent-Length: 50000000\r\n\r\n"
            % AUTH.encode()
            + b"{" * 1000
        )
        status, headers, body = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_413_for_a_chunked_body(server: LocalServer) -> None:
    server.configure(max_body_bytes=16)
    with connect(server) as sock:
        sock.sendall(CHUNKED_HEAD + b"20\r\n" + b"x" * 32 + b"\r\n")
        assert read_response(sock)[0] == 413


def test_expect_100_continue(server: LocalServer) -> None:
    body = b'{"type":"cont"}'
    with connect(server) as sock:
        sock.sendall(
            post_event(b"", "Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: %d" % len(body)
            )
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert read_response(sock)[0] == 201


def test_reset_is_a_tcp_reset(server: LocalServer) -> None:
    server.configure(faults=[FaultRule("POST /v1/events", fault=Fault("reset_before"))])
    with connect(server) as sock:
        sock.sendall(post_event(b'{"type":"a"}'))
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


def test_truncated_sends_half_the_declared_body(server: LocalServer) -> None:
    server.configure(faults=[FaultRule("POST /v1/events", fault=Fault("truncated"))])
    with connect(server) as sock:
        sock.sendall(post_event(b'{"type":"a"}'))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    assert 0 < len(body) < length
    assert len(server.ledger.events) == 1


# -- ASGI ----------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_asgi_app_in_process() -> None:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {DEFAULT_TEST_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test/v1", headers=headers
    ) as client:
        created = await client.post(
            "/events", json={"type": "asgi"}, headers={"Idempotency-Key": "k"}
        )
        assert created.status_code == 201
        replay = await client.post(
            "/events", json={"type": "asgi"}, headers={"Idempotency-Key": "k"}
        )
        assert replay.headers["idempotent-replayed"] == "true"
        assert (await client.get("/workflows/a%2Fb")).status_code == 404
        assert (await client.get("/events", params={"per_page": "0"})).status_code == 400
        too_big = await client.post("/events", content=b"x" * (app.config.max_body_bytes + 1))
        assert too_big.status_code == 413
    assert len(app.ledger.events) == 1
    assert app.ledger.replays == 1


@pytest.mark.anyio
async def test_asgi_faults(anyio_backend: str) -> None:
    app = create_app(
        ServerConfig(
            faults=[
                FaultRule(
                    "POST /v1/events",
                    sequence=[
                        Fault("delay", delay=0.05),
                        Fault("reset_after"),
                        Fault("truncated"),
                        Fault("status", status=504),
                    ],
                )
            ]
        )
    )
    headers = {"Authorization": f"Bearer {DEFAULT_TEST_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test/v1", headers=headers
    ) as client:
        assert (await client.post("/events", json={"type": "slow"})).status_code == 201
        # what httpx raises for the real thing over a socket, and a SimulatedConnectionError
        with pytest.raises(httpx.ReadError, match="reset") as reset:
            await client.post("/events", json={"type": "reset"})
        with pytest.raises(httpx.RemoteProtocolError, match="truncated") as cut:
            await client.post("/events", json={"type": "cut"})
        assert (await client.post("/events", json={"type": "x"})).status_code == 504
    assert isinstance(reset.value, SimulatedConnectionError)
    assert isinstance(cut.value, SimulatedConnectionError)
    assert [e["type"] for e in app.ledger.events] == ["slow", "reset", "cut"]


@pytest.mark.anyio
async def test_the_sdk_over_asgi_sees_connection_errors_not_the_simulation() -> None:
    """Through ``httpx.ASGITransport`` a reset is an ``APIConnectionError``, retried as usual."""
    rule = FaultRule(
        "POST /v1/events",
        sequence=[Fault("reset_before"), Fault("truncated"), Fault("reset_after"), None],
    )
    app = create_app(ServerConfig(faults=[rule]))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    fast = ventryx.RetryPolicy(initial_delay=0.001, max_delay=0.002)
    async with ventryx.AsyncVentryx(
        DEFAULT_TEST_KEY,
        base_url="http://127.0.0.1/v1",
        http_client=http,
        max_retries=0,
        retry_policy=fast,
    ) as client:
        for kind in ("reset", "truncated"):
            with pytest.raises(ventryx.APIConnectionError, match=kind) as caught:
                await client.events.emit(type="once", idempotency_key=kind)
            assert isinstance(caught.value.__cause__, httpx.TransportError)
        # reset after the effect: the retry with the same key is a replay, applied once
        event = await client.with_options(max_retries=2).events.emit(type="kept")
        assert event.type == "kept"
    await http.aclose()
    assert [e["type"] for e in app.ledger.events] == ["once", "kept"]
    assert app.ledger.replays == 1


@pytest.mark.anyio
async def test_asgi_lifespan() -> None:
    app = create_app()
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: object) -> None:
        assert isinstance(message, dict)
        sent.append(str(message["type"]))

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

"""Starting and stopping the local server, its CLI, pytest fixtures and admin routes."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator

import attrs
import httpx
import pytest

from ventryx.testing import (
    DEFAULT_TEST_KEY,
    Fault,
    FaultRule,
    LocalServer,
    RateLimit,
    ServerConfig,
)
from ventryx.testing import (
    __all__ as public_names,
)
from ventryx.testing._cli import add_server_arguments, config_from_args, parse_fault


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ventryx-local-server")]


def test_public_api_is_sorted() -> None:
    assert list(public_names) == sorted(public_names)


def test_start_stop_leaves_no_thread() -> None:
    before = server_threads()
    server = LocalServer()
    assert not server.running
    server.start()
    assert server.running
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.base_url == server.url + "/v1"
    assert server.api_key == DEFAULT_TEST_KEY
    assert len(server_threads()) == len(before) + 1
    with pytest.raises(RuntimeError):
        server.start()
    # an open keep-alive connection must not keep the server (or its thread) alive
    client = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    )
    assert client.get("/events").status_code == 200
    server.stop()
    server.stop()  # idempotent
    assert not server.running
    assert server_threads() == before
    with pytest.raises(httpx.TransportError):
        client.get("/events")
    client.close()
    # and it can be started again, data intact
    with server:
        assert server.running
    assert server_threads() == before


def test_stop_during_a_delayed_request() -> None:
    config = ServerConfig(faults=[FaultRule("*", fault=Fault("delay", delay=30))])
    server = LocalServer(config).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            auth = {"Authorization": f"Bearer {server.api_key}"}
            httpx.get(server.base_url + "/events", headers=auth, timeout=10)
        except httpx.TransportError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not server.ledger.attempts:
        threading.Event().wait(0.01)
    server.stop()
    caller.join(10)
    assert not caller.is_alive()
    assert len(errors) == 1
    assert server_threads() == []


def test_bind_failure_is_raised() -> None:
    with LocalServer() as first:
        taken = LocalServer(port=first.port)
        with pytest.raises(OSError):
            taken.start()
        assert not taken.running
    assert server_threads() == []


def test_no_resource_warnings_in_a_fresh_interpreter() -> None:
    script = textwrap.dedent(
        """
        import httpx, warnings
        from ventryx.testing import LocalServer, Fault, FaultRule
        warnings.simplefilter("error")
        rules = [FaultRule("POST /v1/events", sequence=[Fault("reset_before"), Fault("truncated")])]
        for _ in range(3):
            with LocalServer() as srv:
                srv.configure(faults=rules)
                auth = {"Authorization": "Bearer " + srv.api_key}
                c = httpx.Client(base_url=srv.base_url, headers=auth)
                for _ in range(2):
                    try:
                        c.post("/events", json={"type": "a"})
                    except httpx.TransportError:
                        pass
                c.get("/events")
                c.close()
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert "Warning" not in proc.stderr, proc.stderr


@pytest.mark.anyio
async def test_async_context_manager(anyio_backend: str) -> None:
    before = server_threads()
    async with LocalServer() as server:
        assert server.running
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            resp = await client.post("/events", json={"type": anyio_backend})
            assert resp.status_code == 201
        assert server.ledger.events[0]["type"] == anyio_backend
    assert not server.running
    assert server_threads() == before


def test_configure_and_reset(server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    url = server.base_url + "/events"
    httpx.post(url, json={"type": "a"}, headers={**headers, "Idempotency-Key": "k"})
    new = server.configure(rate_limit=RateLimit(100, burst=5), record_requests=False)
    assert new.rate_limit == RateLimit(100, burst=5)
    assert server.app.config is new
    assert new == attrs.evolve(
        ServerConfig(), rate_limit=RateLimit(100, burst=5), record_requests=False
    )
    httpx.get(url, headers=headers)
    assert len(server.ledger.requests) == 1  # recording is off now
    assert server.ledger.attempts["GET /v1/events"] == 1
    server.reset()
    assert server.ledger.snapshot()["events"] == 0
    assert server.ledger.attempts == {}
    assert httpx.get(url, headers=headers).json()["meta"]["total"] == 0
    replay = httpx.post(url, json={"type": "a"}, headers={**headers, "Idempotency-Key": "k"})
    assert "idempotent-replayed" not in replay.headers  # the store was cleared too
    with pytest.raises(TypeError):
        server.configure(no_such_field=1)


def test_admin_routes(server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    server.configure(faults=[FaultRule("*", fault=Fault("status", status=500), probability=0.0)])
    for i in range(3):
        httpx.post(
            server.base_url + "/events", json={"type": "t", "data": {"i": i}}, headers=headers
        )
    ledger = httpx.get(server.url + "/_testing/ledger")
    assert ledger.status_code == 200
    assert ledger.headers["content-type"] == "application/json"
    snapshot = ledger.json()["data"]
    assert snapshot["event_count"] == 3
    assert snapshot["events"] == 3
    assert snapshot["attempts"] == {"POST /v1/events": 3}
    assert snapshot["replays"] == 0
    assert snapshot["duplicates"] == 0
    assert httpx.get(server.url + "/_testing/reset").status_code == 405
    assert httpx.post(server.url + "/_testing/nope").status_code == 404
    reset = httpx.post(server.url + "/_testing/reset")
    assert reset.status_code == 200
    assert server.ledger.events == []
    assert httpx.get(server.url + "/_testing/ledger").json()["data"]["event_count"] == 0


# -- pytest plugin --------------------------------------------------------------------------
def test_plugin_server_fixture(ventryx_server: LocalServer, server: LocalServer) -> None:
    assert ventryx_server.running
    assert ventryx_server.port != server.port
    resp = httpx.get(
        ventryx_server.base_url + "/workflows",
        headers={"Authorization": f"Bearer {ventryx_server.api_key}"},
    )
    assert resp.status_code == 200


@pytest.fixture
def factory_servers(
    ventryx_server_factory: Callable[[ServerConfig | None], LocalServer],
) -> Iterator[list[LocalServer]]:
    made = [
        ventryx_server_factory(ServerConfig(api_keys=frozenset({"alt"}))),
        ventryx_server_factory(None),
    ]
    yield made
    # the factory's own teardown runs after this one: still running here
    assert all(s.running for s in made)


def test_plugin_server_factory(factory_servers: list[LocalServer]) -> None:
    alt, default = factory_servers
    assert alt.api_key == "alt"
    assert default.api_key == DEFAULT_TEST_KEY
    resp = httpx.get(alt.base_url + "/events", headers={"Authorization": "Bearer alt"})
    assert resp.status_code == 200


@pytest.fixture
def stopped_at_teardown() -> Iterator[list[LocalServer]]:
    made: list[LocalServer] = []
    yield made
    # set up before the factory, so torn down after it: its servers must be stopped by now
    assert made
    assert not any(s.running for s in made)


def test_plugin_factory_stops_its_servers(
    stopped_at_teardown: list[LocalServer],
    ventryx_server_factory: Callable[[ServerConfig | None], LocalServer],
) -> None:
    stopped_at_teardown.append(ventryx_server_factory(None))
    stopped_at_teardown.append(ventryx_server_factory(ServerConfig(seed=1)))
    assert all(s.running for s in stopped_at_teardown)


def test_plugin_defines_only_fixtures() -> None:
    import ventryx.testing.pytest_plugin as plugin

    public = {name for name in vars(plugin) if not name.startswith(("_", "@"))}  # @: pytest rewrite
    fixtures = {"ventryx_server", "ventryx_server_factory"}
    assert fixtures <= public
    helpers = public - fixtures
    assert helpers <= {"annotations", "Callable", "Iterator", "TYPE_CHECKING", "pytest"}


# -- CLI ------------------------------------------------------------------------------------
def parse(*argv: str) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_cli_options_build_the_config() -> None:
    assert parse() == ServerConfig()
    config = parse(
        "--api-key", "a", "--api-key", "b", "--rate-limit", "5", "--burst", "2",
        "--retry-after", "http-date", "--fault", "POST /v1/events:status=503:0.05",
        "--fault", "*:reset_before", "--seed", "9", "--no-record",
    )  # fmt: skip
    assert config.api_keys == frozenset({"a", "b"})
    assert config.rate_limit == RateLimit(5, 2, "http-date")
    assert config.faults == (
        FaultRule("POST /v1/events", fault=Fault("status", status=503), probability=0.05),
        FaultRule("*", fault=Fault("reset_before")),
    )
    assert config.seed == 9
    assert not config.record_requests


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        (
            "GET /v1/workflows/{id}:delay=0.5",
            FaultRule("GET /v1/workflows/{id}", fault=Fault("delay", delay=0.5)),
        ),
        (
            "*:rate_limited=1:0.5",
            FaultRule("*", fault=Fault("rate_limited", retry_after="1"), probability=0.5),
        ),
        (
            "* /v1/events:rate_limited=Wed, 21 Oct 2037 07:28:00 GMT",
            FaultRule(
                "* /v1/events",
                fault=Fault("rate_limited", retry_after="Wed, 21 Oct 2037 07:28:00 GMT"),
            ),
        ),
        ("*:rate_limited=none", FaultRule("*", fault=Fault("rate_limited"))),
        ("*:html_502:0.25", FaultRule("*", fault=Fault("html_502"), probability=0.25)),
    ],
)
def test_parse_fault(spec: str, rule: FaultRule) -> None:
    assert parse_fault(spec) == rule


@pytest.mark.parametrize(
    "spec",
    ["nothing", "*:explode", "*:status=404", "*:html_502=1", "events:html_502", "*:status:2"],
)
def test_parse_fault_rejects(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_fault(spec)


def run_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ventryx.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/v1)\b", line)
    assert match, line
    return proc, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_and_exits_on_signal(sig: signal.Signals) -> None:
    proc, base_url = run_cli("--api-key", "cli-key", "--fault", "GET /v1/events:status=504")
    try:
        auth = {"Authorization": "Bearer cli-key"}
        assert (
            httpx.post(base_url + "/events", json={"type": "cli"}, headers=auth).status_code == 201
        )
        assert httpx.get(base_url + "/events", headers=auth).status_code == 504
        assert (
            httpx.get(base_url.removesuffix("/v1") + "/_testing/ledger").json()["data"][
                "event_count"
            ]
            == 1
        )
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert stderr == ""


def test_cli_help_documents_the_fault_syntax() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ventryx.testing", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "ROUTE:KIND[=ARG][:PROBABILITY]" in out.stdout
    assert "--no-record" in out.stdout


def test_cli_rejects_a_bad_fault() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ventryx.testing", "--fault", "*:explode"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert "explode" in out.stderr

"""``ventryx_sync.Ventryx``: what only the sync client has (the shared behaviour tests run it too,
through ``client_kind``): its lifecycle, the one-step driver, threads, fork, Ctrl-C and GC."""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio

import ventryx
import ventryx._driver
import ventryx_sync
from ventryx import AsyncVentryx, RetryPolicy
from ventryx._driver import drive, iterate, step
from ventryx.testing import DEFAULT_TEST_KEY, Fault, FaultRule, LocalServer
from ventryx_sync import Ventryx

SECRET = "vx_live_s3cr3t_DO_NOT_LEAK_0123456789"
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=10.0)
ROOT = Path(__file__).resolve().parent.parent


def make(server: LocalServer, **kwargs: Any) -> Ventryx:
    kwargs.setdefault("retry_policy", FAST_RETRY)
    return Ventryx(server.api_key, base_url=server.base_url, **kwargs)


def client_sockets(port: int) -> int:
    """Open sockets of this process connected to ``port`` (the client side only)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.laddr.port != port
    )


def http_client(client: Ventryx) -> httpx.Client:
    shim = client._inner._pipeline.shim  # type: ignore[attr-defined]
    assert isinstance(shim.client, httpx.Client)
    return shim.client


# -- construction and lifecycle ------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTRYX_API_KEY", SECRET)
    monkeypatch.setenv("VENTRYX_BASE_URL", "http://127.0.0.1:9/v1/")
    with Ventryx(max_retries=5, timeout=3.0) as client:
        assert client.base_url == "http://127.0.0.1:9/v1"
        assert client.max_retries == 5
        assert client.timeout == httpx.Timeout(3.0)
        assert SECRET not in repr(client)
        assert repr(client) == "<Ventryx base_url='http://127.0.0.1:9/v1'>"
    assert client.is_closed


def test_missing_key_and_wrong_http_client_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VENTRYX_API_KEY", raising=False)
    with pytest.raises(ventryx.ConfigurationError, match="VENTRYX_API_KEY"):
        Ventryx()
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        Ventryx(SECRET, http_client=httpx.AsyncClient())  # type: ignore[arg-type]


def test_constructor_mirrors_the_async_client() -> None:
    sync = inspect.signature(Ventryx.__init__).parameters
    async_ = inspect.signature(AsyncVentryx.__init__).parameters
    assert list(sync) == [name for name in async_ if name != "transport"]  # httpx only
    assert "transport" not in dir(Ventryx)
    for name, param in sync.items():
        assert (param.kind, param.default) == (async_[name].kind, async_[name].default)
    assert sync["http_client"].annotation == "httpx.Client | None"


def test_with_closes_and_calls_work(server: LocalServer) -> None:
    with make(server) as client:
        event = client.events.emit(type="t", data={"n": 1})
        assert client.events.retrieve(event.id) == event
        assert not client.is_closed
        assert client_sockets(server.port) == 1
    assert client.is_closed
    assert client_sockets(server.port) == 0


def test_with_options_shares_the_pool_and_does_not_close_it(server: LocalServer) -> None:
    client = make(server)
    copy = client.with_options(max_retries=0, timeout=3.0, default_headers={"X-Team": "a"})
    assert isinstance(copy, Ventryx)
    assert (copy.max_retries, copy.timeout, client.max_retries) == (0, httpx.Timeout(3.0), 2)
    copy.events.emit(type="via-copy")
    assert server.ledger.requests[-1].headers["x-team"] == "a"
    assert http_client(copy) is http_client(client)
    copy.close()
    assert not client.is_closed
    client.events.emit(type="via-original")
    client.close()
    assert client.is_closed
    assert copy.is_closed
    assert len(server.ledger.events) == 2


def test_an_injected_http_client_is_used_and_never_closed(server: LocalServer) -> None:
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]}) as http:
        with Ventryx(server.api_key, base_url=server.base_url, http_client=http) as client:
            client.events.emit(type="t")
        assert not http.is_closed
        del client
        gc.collect()
        assert not http.is_closed
    assert seen == ["/v1/events"]


def test_errors_are_the_async_packages_own_classes(server: LocalServer) -> None:
    shared = [name for name in ventryx_sync.__all__ if name not in ("Page", "Ventryx", "Emitter")]
    for name in shared:
        assert getattr(ventryx_sync, name) is getattr(ventryx, name), name
    server.configure(faults=[FaultRule("POST /v1/events", fault=Fault("rate_limited"))])
    caught: list[ventryx.RateLimitError] = []
    with make(server, max_retries=0) as client:
        try:
            client.events.emit(type="t")
        except ventryx.RateLimitError as exc:  # the point: a plain `except` of the shared class
            caught.append(exc)
    assert [exc.status_code for exc in caught] == [429]


# -- the driver ------------------------------------------------------------------------------


@types.coroutine
def _bare_yield() -> Iterator[str]:
    yield "suspended"


def test_drive_refuses_a_coroutine_that_really_suspends() -> None:
    cleaned: list[str] = []

    async def waits_on_asyncio() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            cleaned.append("asyncio")

    async def waits_on_a_bare_yield() -> None:
        try:
            await _bare_yield()
        finally:
            cleaned.append("bare")

    with pytest.raises(ventryx.DriverError, match="waits_on_asyncio suspended"):
        drive(waits_on_asyncio())
    with pytest.raises(ventryx.DriverError, match=r"waits_on_a_bare_yield suspended .*'suspended'"):
        drive(waits_on_a_bare_yield())
    assert cleaned == ["asyncio", "bare"]  # closed, not left pending


def test_drive_returns_and_raises_like_the_coroutine() -> None:
    async def answer() -> int:
        return 42

    async def fails() -> None:
        raise KeyError("x")

    assert drive(answer()) == 42
    with pytest.raises(KeyError):
        drive(fails())


def test_step_and_iterate_turn_async_iterators_into_iterators() -> None:
    closed: list[bool] = []

    async def numbers() -> Any:
        try:
            for n in range(3):
                yield n
        finally:
            closed.append(True)

    source = numbers()
    assert step(source) == 0
    assert list(iterate(source)) == [1, 2]
    with pytest.raises(StopIteration):
        step(source)
    early = iterate(numbers())
    assert next(early) == 0
    del early  # dropping it half-way closes the async generator, driven too
    assert closed == [True, True]


def _portal_methods() -> set[str]:
    """Methods that run the async engine on a portal: ``PORTAL_METHODS`` of the generator."""
    tree = ast.parse((ROOT / "scripts" / "generate_sync.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "PORTAL_METHODS":
            found: set[str] = ast.literal_eval(node.value)
            assert found, "no portal methods in scripts/generate_sync.py"
            return found
    raise AssertionError("scripts/generate_sync.py names no PORTAL_METHODS")


def _public_members(obj: object) -> list[str]:
    names = [n for n in dir(type(obj)) if not n.startswith("_")]
    protocol = ["__len__", "__iter__", "__repr__", "__enter__"]
    return sorted(names) + [n for n in protocol if hasattr(type(obj), n)]


def test_every_public_method_completes_without_suspending(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walk every public method and property of the client, its resources and its pages (a new
    method is walked automatically) with a driver that records what it runs; a suspension
    would raise DriverError. Every call that reached the server went through the driver,
    except the portal methods (bulk emission), which run the async engine for real."""
    driven: list[str] = []
    real_drive = ventryx._driver.drive

    def recording_drive(awaitable: Any) -> Any:
        driven.append(type(awaitable).__name__)
        return real_drive(awaitable)

    for name, module in list(sys.modules.items()):
        ours = name == "ventryx._driver" or name.startswith("ventryx_sync")
        if ours and hasattr(module, "drive"):
            monkeypatch.setattr(module, "drive", recording_drive)
    portal = _portal_methods()

    client = make(server)
    for i in range(5):
        client.events.emit(type="walk", data={"i": i})

    def arguments(method: Callable[..., Any]) -> dict[str, Any]:
        fill: dict[str, Callable[[], Any]] = {
            "name": lambda: "walked",
            "trigger": lambda: {"event": "walk"},
            "steps": lambda: [],
            "type": lambda: "walk",
            "per_page": lambda: 2,
            "events": lambda: [{"type": "walk.bulk"}, {"type": "walk.bulk"}],
            "workflow_id": lambda: (
                client.workflows.create(name="w", trigger={"event": "e"}, steps=[]).id
            ),
            "event_id": lambda: client.events.emit(type="walk").id,
        }
        out: dict[str, Any] = {}
        for param in inspect.signature(method).parameters.values():
            if param.name in fill:
                out[param.name] = fill[param.name]()
            elif param.default is inspect.Parameter.empty and param.kind not in (
                param.VAR_POSITIONAL,
                param.VAR_KEYWORD,
            ):
                pytest.fail(f"no test value for the required parameter {param.name!r}")
        return out

    walked: set[str] = set()
    pages: list[Any] = []

    def walk(obj: Any, label: str) -> None:
        for name in _public_members(obj):
            if name == "close":
                continue  # last, below
            walked.add(f"{label}.{name}")
            member = getattr(obj, name)
            if not callable(member) or isinstance(member, (ventryx_sync.Page, Ventryx)):
                continue  # a property: reading it was the call
            before, calls = len(server.ledger.requests), len(driven)
            result = member(**arguments(member))
            if isinstance(result, Iterator):
                result = list(result)
            sent = len(server.ledger.requests) - before
            if sent and name not in portal:
                assert len(driven) > calls, f"{label}.{name} sent without the driver"
            for item in result if isinstance(result, list) else [result]:
                if isinstance(item, ventryx_sync.Page) and not pages:
                    pages.append(item)
            if isinstance(result, Ventryx) and result is not obj:
                result.close()  # a with_options copy

    walk(client, "client")
    for resource in ("workflows", "events"):
        walk(getattr(client, resource), resource)
    assert pages, "no method returned a Page"
    walk(pages[0], "page")
    client.close()
    walked.add("client.close")
    assert client.is_closed

    expected = {
        "client.with_options",
        "client.close",
        "workflows.list",
        "workflows.create",
        "workflows.retrieve",
        "workflows.update",
        "workflows.delete",
        "events.emit",
        "events.list",
        "events.retrieve",
        "events.emit_many",
        "page.next_page",
        "page.iter_pages",
        "page.iter_items",
        "page.__iter__",
    }
    assert expected <= walked
    assert driven


def test_the_retry_path_does_not_suspend_either(server: LocalServer) -> None:
    faults = [Fault("status", status=503), Fault("rate_limited", retry_after="0.01")]
    server.configure(faults=[FaultRule("POST /v1/events", sequence=faults)])
    with make(server, max_retries=3) as client:
        event = client.events.emit(type="t")
    assert event.raw_response is not None
    assert event.raw_response.attempts == 3


# -- threads, event loops, fork -------------------------------------------------------------


def test_sixteen_threads_share_one_client(server: LocalServer) -> None:
    threads, calls = 16, 125
    ids: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)
    with make(server) as client:

        def work(n: int) -> None:
            try:
                start.wait()
                for i in range(calls):
                    ids[n].append(client.events.emit(type="thread", data={"t": n, "i": i}).id)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    returned = [event_id for per_thread in ids for event_id in per_thread]
    assert len(returned) == len(set(returned)) == threads * calls
    applied = server.ledger.events
    assert sorted(e["id"] for e in applied) == sorted(returned)
    assert {(e["data"]["t"], e["data"]["i"]) for e in applied} == {
        (t, i) for t in range(threads) for i in range(calls)
    }


def _use_inside_a_loop(server: LocalServer) -> tuple[str, list[int], int]:
    with make(server) as client:
        event = client.events.emit(type="in-loop")
        for _ in client.events.list(per_page=1):
            break  # nothing to finalize on the running loop
        seen = [len(page.data) for page in client.events.list(per_page=1).iter_pages()]
        summary = client.events.emit_many([{"type": "bulk"}] * 3)
    return event.id, seen, summary.delivered


def test_works_from_inside_a_running_event_loop(server: LocalServer) -> None:
    async def on_asyncio() -> tuple[str, list[int], int]:
        return _use_inside_a_loop(server)

    async def on_trio() -> tuple[str, list[int], int]:
        return _use_inside_a_loop(server)

    first = asyncio.run(on_asyncio())
    second = trio.run(on_trio)
    assert (first[1], first[2]) == ([1], 3)
    assert (second[1], second[2]) == ([1] * 5, 3)  # five events exist by then


@pytest.fixture
def server_process() -> Iterator[str]:
    """A local server in a child process: this process stays single-threaded for ``fork``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ventryx.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://\S+/v1)", line)
        assert found, f"the server did not start: {line!r}"
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_forked_child_gets_its_own_connections(server_process: str) -> None:
    with Ventryx(DEFAULT_TEST_KEY, base_url=server_process, retry_policy=FAST_RETRY) as client:
        client.events.emit(type="parent")
        parent_pool = http_client(client)
        read, write = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads; the server runs in a
            # subprocess precisely so that this one has none, but a leftover thread of another
            # test must not fail this one.
            warnings.filterwarnings(
                "ignore", "This process .* is multi-threaded", DeprecationWarning
            )
            pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            status = 1
            try:
                fresh = http_client(client) is not parent_pool
                event = client.events.emit(type="child")
                os.write(write, f"fresh={fresh} id={event.id}".encode())
                status = 0
            except BaseException as exc:
                os.write(write, repr(exc).encode())
            finally:
                os._exit(status)
        os.close(write)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.02)
        with os.fdopen(read) as pipe:
            report = pipe.read()
        assert os.waitstatus_to_exitcode(done[1]) == 0, report
        assert report.startswith("fresh=True id=evt_"), report
        assert http_client(client) is parent_pool  # the parent keeps its pool
        client.events.emit(type="parent-again")
        types_seen = [e.type for e in client.events.list(per_page=10)]
    assert types_seen == ["parent", "child", "parent-again"]


# -- Ctrl-C and resources --------------------------------------------------------------------


def test_ctrl_c_during_a_retry_wait_reaches_the_caller_promptly(server: LocalServer) -> None:
    server.configure(
        faults=[FaultRule("POST /v1/events", sequence=[Fault("rate_limited", retry_after="5")])]
    )
    client = make(server, max_retries=2)
    threads_before = set(threading.enumerate())
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.events.emit(type="interrupted")
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert elapsed < 2.0  # not the 5 s Retry-After
    assert server.ledger.faults["rate_limited"] == 1  # interrupted in the wait after it
    # No thread left behind; one from an earlier test may have ended meanwhile (seen on 3.10).
    assert set(threading.enumerate()) <= threads_before
    # The client is intact (its pooled connection is reusable), and closing it frees it.
    client.events.emit(type="after")
    assert [e["type"] for e in server.ledger.events] == ["after"]
    assert client_sockets(server.port) == 1
    client.close()
    assert client_sockets(server.port) == 0


def test_dropping_an_unclosed_client_releases_its_connections(server: LocalServer) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = make(server)
        client.events.emit(type="t")
        copy = client.with_options(max_retries=0)
        copy.events.emit(type="t")
        http = http_client(client)
        assert client_sockets(server.port) == 1
        del client, copy
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert http.is_closed
    assert client_sockets(server.port) == 0


def test_closing_releases_connections_without_warnings(server: LocalServer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        client = make(server)
        for page in client.events.list(per_page=1).iter_pages():
            assert page.data == []
        client.events.emit(type="t")
        client.close()
        client.close()  # twice is fine
        assert client_sockets(server.port) == 0
        del client
        gc.collect()

"""Client construction, settings, lifecycle, logging and secrets."""

from __future__ import annotations

import copy
import logging

import httpx
import pytest

import ventryx
from ventryx import AsyncVentryx
from ventryx._options import ClientOptions, resolve_options
from ventryx.testing import LocalServer

pytestmark = pytest.mark.anyio

SECRET = "vx_live_s3cr3t_DO_NOT_LEAK_0123456789"


def test_key_and_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTRYX_API_KEY", SECRET)
    monkeypatch.setenv("VENTRYX_BASE_URL", "http://127.0.0.1:9/v1/")
    client = AsyncVentryx()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert SECRET not in repr(client)


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VENTRYX_API_KEY", raising=False)
    with pytest.raises(ventryx.ConfigurationError, match="VENTRYX_API_KEY"):
        AsyncVentryx()
    with pytest.raises(ventryx.ConfigurationError, match="VENTRYX_API_KEY"):
        AsyncVentryx("   ")


@pytest.mark.parametrize(
    "key", [SECRET[:10] + "\n" + SECRET[10:], SECRET + " x", SECRET + "\x00", SECRET + "ключ"]
)
def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(ventryx.ConfigurationError) as info:
        AsyncVentryx(key, base_url="http://127.0.0.1:9/v1")
    assert SECRET[:10] not in str(info.value)


def test_surrounding_whitespace_of_a_key_read_from_a_file_is_dropped(server: LocalServer) -> None:
    client = AsyncVentryx(server.api_key + "\n", base_url=server.base_url)
    assert client._pipeline.options.api_key == server.api_key


@pytest.mark.parametrize(
    "url",
    [
        "api.ventryx.io/v1",
        "ftp://api.ventryx.io/v1",
        "https://user:pw@api.ventryx.io/v1",
        "https://api.ventryx.io/v1?x=1",
        "https://api.ventryx.io/v1#frag",
        "https://api.ventryx.io/v1/../admin",
        "",
    ],
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ventryx.ConfigurationError, match="base_url"):
        AsyncVentryx(SECRET, base_url=url)


def test_plain_http_to_another_host_warns() -> None:
    with pytest.warns(ventryx.InsecureBaseURLWarning, match="unencrypted"):
        AsyncVentryx(SECRET, base_url="http://api.ventryx.io/v1")


@pytest.mark.parametrize("bad", [{"max_retries": -1}, {"max_retries": True}, {"timeout": 0}])
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ventryx.ConfigurationError):
        AsyncVentryx(SECRET, base_url="http://127.0.0.1:9/v1", **bad)  # type: ignore[arg-type]


def test_an_injected_client_must_be_async() -> None:
    with pytest.raises(TypeError, match=r"httpx\.AsyncClient"):
        AsyncVentryx(SECRET, http_client=httpx.Client())  # type: ignore[arg-type]


async def test_injected_http_client_is_used_and_not_closed(server: LocalServer) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http:
        async with AsyncVentryx(server.api_key, base_url=server.base_url, http_client=http) as c:
            await c.events.emit(type="t")
        assert not http.is_closed
        assert seen == ["/v1/events"]


async def test_owned_client_is_closed_and_copies_share_the_pool(server: LocalServer) -> None:
    client = AsyncVentryx(server.api_key, base_url=server.base_url)
    copy = client.with_options(max_retries=0, timeout=3.0)
    assert copy.max_retries == 0
    assert copy.timeout == httpx.Timeout(3.0)
    assert client.max_retries == 2
    await copy.events.emit(type="via-copy")
    await copy.aclose()
    assert not client.is_closed
    await client.events.emit(type="via-original")
    await client.aclose()
    assert client.is_closed
    assert copy.is_closed


async def test_with_options_can_change_key_and_headers(server: LocalServer) -> None:
    async with AsyncVentryx("vx_wrong", base_url=server.base_url) as client:
        with pytest.raises(ventryx.AuthenticationError):
            await client.events.list()
        good = client.with_options(api_key=server.api_key, default_headers={"X-Team": "growth"})
        await good.events.emit(type="t")
    assert server.ledger.requests[-1].headers["x-team"] == "growth"


async def test_user_agent_and_per_call_headers_and_query(server: LocalServer) -> None:
    async with AsyncVentryx(server.api_key, base_url=server.base_url) as client:
        await client.events.emit(type="t", extra_headers={"X-Trace": "abc"})
        await client.events.list(extra_query={"type": "t"})
    emit, listing = server.ledger.requests
    assert emit.headers["user-agent"].startswith(f"ventryx-python/{ventryx.__version__} ")
    assert emit.headers["x-trace"] == "abc"
    assert "type=t" in listing.query.split("&")


async def test_secrets_never_reach_reprs_errors_or_debug_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from ventryx.testing import Fault, FaultRule, ServerConfig

    caplog.set_level(logging.DEBUG)
    config = ServerConfig(
        api_keys=frozenset({SECRET}),
        faults=[FaultRule("POST /v1/events", sequence=[Fault("status", status=503)])],
    )
    texts: list[str] = []
    with LocalServer(config) as srv:
        async with AsyncVentryx(SECRET, base_url=srv.base_url, max_retries=1) as client:
            texts.append(repr(client))
            event = await client.events.emit(type="t")
            texts += [repr(event), repr(event.raw_response)]
            bad = client.with_options(api_key=SECRET + "x")
            try:
                await bad.events.list()
            except ventryx.AuthenticationError as exc:
                import traceback

                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
            else:
                pytest.fail("expected AuthenticationError")
    texts += [r.getMessage() for r in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    assert any("POST /v1/events -> 503" in t for t in texts), "debug logs were captured"
    for text in texts:
        assert SECRET not in text


async def test_ventryx_log_env_turns_on_a_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    import ventryx._logging as vlog

    monkeypatch.setenv("VENTRYX_LOG", "debug")
    monkeypatch.setattr(vlog, "_configured", False)
    logger = logging.getLogger("ventryx")
    handlers, level = list(logger.handlers), logger.level
    try:
        AsyncVentryx(SECRET, base_url="http://127.0.0.1:9/v1")
        assert logger.level == logging.DEBUG
        assert len(logger.handlers) == len(handlers) + 1
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def test_resolved_options_are_an_immutable_value_that_hides_the_key() -> None:
    def resolve(**changes: object) -> ClientOptions:
        settings: dict[str, object] = {
            "api_key": SECRET,
            "base_url": "http://127.0.0.1:9/v1",
            "timeout": 5.0,
            "max_retries": 2,
            "retry_policy": None,
            "default_headers": {"X-Tenant": "tenant-secret-value"},
            "default_query": None,
        }
        return resolve_options(**{**settings, **changes})  # type: ignore[arg-type]

    options = resolve()
    assert options == resolve() == copy.deepcopy(options)
    assert options != resolve(max_retries=3)
    assert SECRET not in repr(options)
    assert "tenant-secret-value" not in repr(options)
    assert "X-Tenant" in repr(options)
    with pytest.raises(AttributeError, match="immutable"):
        options.api_key = "vx_other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="unhashable"):
        hash(options)

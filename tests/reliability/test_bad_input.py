"""The bad-input table: each row is an input and the typed error (or correct handling) it gets.

Four tables, by where the input is caught:

- ``CONFIG_ROWS``: client settings, refused (or warned about) at construction, through both
  ``AsyncVentryx`` and ``ventryx_sync.Ventryx``; no client exists, so nothing can be sent.
- ``CALL_ROWS``: call arguments, over real HTTP against the local server through
  ``make_client`` (async and sync); ``sent`` is how many requests the server must have seen,
  0 wherever the SDK can know the input is bad.
- ``RESPONSE_ROWS``: answers the local server never gives (``httpx.MockTransport``, pure logic).
- ``RAW_ROWS``: answers below the JSON layer from a scripted raw socket server (real HTTP).

``tests/test_client.py``, ``test_workflows.py``, ``test_events.py`` and ``test_responses.py``
hold more rows of the same kinds; these extend them.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
import pytest

import ventryx
import ventryx_sync
from ventryx import AsyncVentryx, Step
from ventryx.testing import LocalServer

pytestmark = [pytest.mark.reliability, pytest.mark.anyio, pytest.mark.timeout(60)]

KEY = "vx_test_bad_input"
STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}
WORKFLOW = {
    "id": "wf_1",
    "name": "n",
    "trigger": {"event": "e"},
    "steps": [STEP],
    "created_at": "2026-01-01T00:00:00Z",
}
EVENT = {"id": "evt_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z"}
META = {"total": 1, "page": 1, "per_page": 20}


# -- client settings --------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigRow:
    """Constructor keyword arguments and the error (or warning) they must give."""

    id: str
    kwargs: dict[str, Any]
    error: type[Exception] | None = ventryx.ConfigurationError
    warns: bool = False


CONFIG_ROWS = [
    ConfigRow("key-embedded-newline", {"api_key": "vx_abc\nX-Injected: 1"}),
    ConfigRow("key-embedded-tab", {"api_key": "vx_abc\tdef"}),
    ConfigRow("key-not-a-string", {"api_key": 12345}),
    ConfigRow("key-bytes", {"api_key": b"vx_abc"}),
    ConfigRow("key-empty", {"api_key": ""}),
    ConfigRow("key-non-ascii", {"api_key": "vx_clé"}),
    ConfigRow("url-no-scheme", {"base_url": "api.ventryx.io/v1"}),
    ConfigRow("url-scheme-relative", {"base_url": "//api.ventryx.io/v1"}),
    ConfigRow("url-no-host", {"base_url": "https:///v1"}),
    ConfigRow("url-javascript", {"base_url": "javascript:alert(1)"}),
    ConfigRow("url-not-a-string", {"base_url": 443}),
    ConfigRow("url-dotdot", {"base_url": "https://api.ventryx.io/v1/../admin"}),
    ConfigRow("url-dot", {"base_url": "https://api.ventryx.io/./v1"}),
    ConfigRow("url-encoded-dotdot", {"base_url": "https://api.ventryx.io/v1/%2e%2e/admin"}),
    ConfigRow("url-encoded-slash-dotdot", {"base_url": "https://api.ventryx.io/v1/%2F..%2F"}),
    ConfigRow("url-userinfo-host-trick", {"base_url": "https://api.ventryx.io@evil.example/v1"}),
    ConfigRow("url-backslash-trick", {"base_url": "https://api.ventryx.io\\@evil.example/v1"}),
    ConfigRow("url-empty-query", {"base_url": "https://api.ventryx.io/v1?"}),
    ConfigRow("url-query", {"base_url": "https://api.ventryx.io/v1?admin=1"}),
    ConfigRow("url-port-out-of-range", {"base_url": "http://127.0.0.1:99999/v1"}),
    ConfigRow("url-port-zero", {"base_url": "http://127.0.0.1:0/v1"}),
    ConfigRow("url-http-remote", {"base_url": "http://api.ventryx.io/v1"}, None, warns=True),
    ConfigRow(
        "url-http-fake-localhost",
        {"base_url": "http://localhost.evil.example/v1"},
        None,
        warns=True,
    ),
    ConfigRow("url-http-private-ip", {"base_url": "http://10.0.0.5/v1"}, None, warns=True),
    ConfigRow("url-http-loopback-ok", {"base_url": "http://127.0.0.1:8080/v1"}, None),
    ConfigRow("url-http-ipv6-loopback-ok", {"base_url": "http://[::1]:8080/v1"}, None),
    ConfigRow("max-retries-string", {"max_retries": "3"}),
    ConfigRow("timeout-string", {"timeout": "5"}),
    ConfigRow("timeout-negative", {"timeout": -1.0}),
    ConfigRow("retry-policy-dict", {"retry_policy": {"initial_delay": 1}}),
    ConfigRow("default-header-newline", {"default_headers": {"X-A": "a\r\nX-B: b"}}),
    ConfigRow("default-query-list", {"default_query": {"tags": ["a", "b"]}}),
    # issue 14: settings that crashed later with a raw exception
    ConfigRow("timeout-infinite", {"timeout": float("inf")}),
    ConfigRow("timeout-nan", {"timeout": float("nan")}),
    ConfigRow("timeout-1e300", {"timeout": 1e300}),
    ConfigRow("timeout-httpx-infinite-read", {"timeout": httpx.Timeout(5.0, read=float("inf"))}),
    ConfigRow("call-timeout-zero", {"call_timeout": 0}),
    ConfigRow("call-timeout-string", {"call_timeout": "5"}),
    ConfigRow("max-response-bytes-zero", {"max_response_bytes": 0}),
    ConfigRow("max-response-bytes-float", {"max_response_bytes": 1e6}),
    ConfigRow("retry-policy-string", {"retry_policy": "fast"}),
    ConfigRow("url-password-bad-scheme", {"base_url": "ftp://user:hunter2pass@api.example/v1"}),
    ConfigRow("default-header-control", {"default_headers": {"X-A": "a\x1bb"}}),
    ConfigRow("default-header-surrogate", {"default_headers": {"X-A": "\ud800"}}),
    ConfigRow("default-query-surrogate", {"default_query": {"q": "\ud800"}}),
]


@pytest.mark.parametrize("cls", [AsyncVentryx, ventryx_sync.Ventryx], ids=["async", "sync"])
@pytest.mark.parametrize("row", CONFIG_ROWS, ids=lambda r: r.id)
def test_client_settings(row: ConfigRow, cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VENTRYX_API_KEY", raising=False)
    monkeypatch.delenv("VENTRYX_BASE_URL", raising=False)
    kwargs = {"api_key": KEY, "base_url": "https://api.ventryx.io/v1", **row.kwargs}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if row.error is not None:
            with pytest.raises(row.error) as info:
                cls(**kwargs)
            secret = kwargs["api_key"]
            if isinstance(secret, str) and len(secret) > 3:
                assert secret not in str(info.value)
        else:
            client = cls(**kwargs)
            assert client.base_url.startswith(("http://", "https://"))
            if cls is ventryx_sync.Ventryx:
                client.close()
    insecure = [w for w in seen if issubclass(w.category, ventryx.InsecureBaseURLWarning)]
    assert bool(insecure) is row.warns
    if insecure:
        assert insecure[0].filename == __file__  # the warning points at the caller's line


# -- call arguments, against the local server -------------------------------------------------
Call = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class CallRow:
    """A call with a bad argument; ``error`` None means it must succeed."""

    id: str
    call: Call
    error: type[Exception] | None
    sent: int
    param: str | None = None  # InvalidInputError.param
    server: dict[str, Any] = field(default_factory=lambda: {})  # server.configure(**server)
    id_sent: str | None = None  # the id that must reach the server as one path segment


def _circular() -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["self"] = data
    return data


def _create(**kwargs: Any) -> Call:
    body = {"name": "n", "trigger": {"event": "e"}, "steps": [STEP], **kwargs}
    return lambda c: c.workflows.create(**body)


def _emit(**kwargs: Any) -> Call:
    return lambda c: c.events.emit(**{"type": "t", **kwargs})


def _invalid(row_id: str, call: Call, param: str) -> CallRow:
    return CallRow(row_id, call, ventryx.InvalidInputError, 0, param)


def _one_segment(row_id: str, call: Call, bad_id: str) -> CallRow:
    return CallRow(row_id, call, ventryx.NotFoundError, 1, id_sent=bad_id)


CALL_ROWS = [
    # names and types
    _invalid("name-none", _create(name=None), "name"),
    _invalid("name-list", _create(name=["n"]), "name"),
    _invalid("name-whitespace", _create(name="\t\n "), "name"),
    _invalid("trigger-event-int", _create(trigger={"event": 5}), "trigger.event"),
    _invalid("trigger-event-empty", _create(trigger={"event": ""}), "trigger.event"),
    _invalid("trigger-none", _create(trigger=None), "trigger"),
    _invalid("steps-none", _create(steps=None), "steps"),
    _invalid("steps-a-dict", _create(steps={"type": "x"}), "steps"),
    _invalid("step-model-empty-type", _create(steps=[Step("", {})]), "steps[0].type"),
    _invalid("step-type-none", _create(steps=[STEP, {"type": None}]), "steps[1].type"),
    _invalid("step-datetime-value", _create(steps=[{"type": "x", "at": datetime.now()}]), "steps"),
    _invalid("event-type-int", _emit(type=5), "type"),
    _invalid("event-type-whitespace", _emit(type="   "), "type"),
    # data
    _invalid("data-list-of-pairs", _emit(data=[("a", 1)]), "data"),
    _invalid("data-a-set", _emit(data={"a", "b"}), "data"),
    _invalid("data-bytes-value", _emit(data={"b": b"\x00\x01"}), "data"),
    _invalid("data-infinity", _emit(data={"x": float("inf")}), "data"),
    _invalid("data-tuple-key-nested", _emit(data={"n": {(1, 2): "k"}}), "data"),
    _invalid("data-lone-surrogate", _emit(data={"s": "\ud800"}), "data"),
    _invalid("data-circular", _emit(data=_circular()), "data"),
    _invalid("data-datetime", _emit(data={"at": datetime.now(timezone.utc)}), "data"),
    # idempotency keys
    _invalid("idempotency-key-too-long", _emit(idempotency_key="k" * 256), "idempotency_key"),
    _invalid("idempotency-key-non-ascii", _emit(idempotency_key="clé"), "idempotency_key"),
    _invalid("idempotency-key-int", _emit(idempotency_key=42), "idempotency_key"),
    # pages
    _invalid("per-page-0", lambda c: c.events.list(per_page=0), "per_page"),
    _invalid("per-page-101", lambda c: c.workflows.list(per_page=101), "per_page"),
    _invalid("per-page-negative", lambda c: c.events.list(per_page=-1), "per_page"),
    _invalid("per-page-string", lambda c: c.workflows.list(per_page="20"), "per_page"),
    _invalid("per-page-bool", lambda c: c.events.list(per_page=True), "per_page"),
    _invalid("per-page-float", lambda c: c.events.list(per_page=2.5), "per_page"),
    _invalid("page-0", lambda c: c.workflows.list(page=0), "page"),
    _invalid("page-string", lambda c: c.events.list(page="1"), "page"),
    _invalid("list-type-empty", lambda c: c.events.list(type=""), "type"),
    # ids that cannot be sent
    _invalid("id-empty", lambda c: c.workflows.retrieve(""), "workflow_id"),
    _invalid("id-whitespace", lambda c: c.events.retrieve("  "), "event_id"),
    _invalid("id-none-update", lambda c: c.workflows.update(None, name="x"), "workflow_id"),
    _invalid("id-int-delete", lambda c: c.workflows.delete(7), "workflow_id"),
    _invalid("update-nothing", lambda c: c.workflows.update("wf_1"), "update"),
    # headers, query, per-call settings
    _invalid("header-name-colon", _emit(extra_headers={"X-A:B": "v"}), "extra_headers"),
    _invalid("header-name-space", _emit(extra_headers={"X A": "v"}), "extra_headers"),
    _invalid("header-value-int", _emit(extra_headers={"X-A": 5}), "extra_headers"),
    _invalid("query-list-value", _emit(extra_query={"a": [1, 2]}), "extra_query"),
    # issue 14: raw UnicodeEncodeError / InvalidURL / misleading connection errors before
    _invalid("id-lone-surrogate", lambda c: c.events.retrieve("evt_\ud800"), "event_id"),
    _invalid("id-10-mb", lambda c: c.workflows.retrieve("w" * 10_000_000), "workflow_id"),
    _invalid("query-lone-surrogate", _emit(extra_query={"q": "\udfff"}), "extra_query"),
    _invalid("query-10-mb", _emit(extra_query={"q": "x" * 10_000_000}), "extra_query"),
    _invalid("query-infinite", _emit(extra_query={"q": float("inf")}), "extra_query"),
    _invalid("header-lone-surrogate", _emit(extra_headers={"X-A": "\ud800"}), "extra_headers"),
    _invalid("header-escape", _emit(extra_headers={"X-A": "a\x1b[2Jb"}), "extra_headers"),
    _invalid("header-nul", _emit(extra_headers={"X-A": "a\x00b"}), "extra_headers"),
    _invalid("header-non-ascii", _emit(extra_headers={"X-A": "clé"}), "extra_headers"),
    _invalid("header-name-has-space", _emit(extra_headers={"X A": "1"}), "extra_headers"),
    _invalid("header-twice", _emit(extra_headers={"X-A": "1", "x-a": "2"}), "extra_headers"),
    _invalid(
        "idempotency-key-conflict",
        _emit(idempotency_key="k1", extra_headers={"Idempotency-Key": "k2"}),
        "extra_headers",
    ),
    _invalid("nested-int-key", _emit(data={"a": {1: "x", "1": "y"}}), "data"),
    _invalid("nested-none-key-in-list", _emit(data={"a": [{None: 1}]}), "data"),
    _invalid("step-int-key", _create(steps=[{**STEP, 2: "x"}]), "steps[0]"),
    _invalid("timeout-infinite-per-call", _emit(timeout=float("inf")), "timeout"),
    _invalid("query-int-name", _emit(extra_query={1: "x"}), "extra_query"),
    _invalid("timeout-string", _emit(timeout="5"), "timeout"),
    _invalid("max-retries-float", _emit(max_retries=1.5), "max_retries"),
    # ids that are sent, as exactly one path segment the server decodes back to the id
    _one_segment("id-slash", lambda c: c.workflows.retrieve("a/b"), "a/b"),
    _one_segment("id-dotdot-update", lambda c: c.workflows.update("..", name="x"), ".."),
    _one_segment("id-traversal-delete", lambda c: c.workflows.delete("../events"), "../events"),
    _one_segment("id-question", lambda c: c.events.retrieve("?page=1"), "?page=1"),
    _one_segment("id-hash", lambda c: c.events.retrieve("#frag"), "#frag"),
    _one_segment("id-percent", lambda c: c.events.retrieve("%2F%2e%2e"), "%2F%2e%2e"),
    _one_segment("id-unicode", lambda c: c.workflows.retrieve("wf_ünï✓"), "wf_ünï✓"),
    _one_segment("id-space-crlf", lambda c: c.workflows.retrieve("a b\r\nX: y"), "a b\r\nX: y"),
    # what only the server can know
    CallRow(
        "payload-over-configured-limit",
        _emit(data={"blob": "x" * 2_000}),
        ventryx.PayloadTooLargeError,
        1,
        server={"max_body_bytes": 1_000},
    ),
    CallRow(
        "workflow-over-configured-limit",
        _create(steps=[{"type": "x", "blob": "y" * 2_000}]),
        ventryx.PayloadTooLargeError,
        1,
        server={"max_body_bytes": 1_000},
    ),
    CallRow(
        "update-over-configured-limit",
        lambda c: c.workflows.update("wf_1", name="n" * 2_000),
        ventryx.PayloadTooLargeError,
        1,
        server={"max_body_bytes": 1_000},
    ),
    CallRow(
        "payload-just-under-limit",
        _emit(data={"blob": "x" * 900}),
        None,
        1,
        server={"max_body_bytes": 1_000},
    ),
    CallRow(
        "payload-over-default-1mib",
        _emit(data={"blob": "x" * 1_100_000}),
        ventryx.PayloadTooLargeError,
        1,
    ),
    _invalid(
        "per-page-0-via-extra-query",
        lambda c: c.events.list(extra_query={"per_page": "0"}),
        "extra_query",
    ),
    _invalid(
        "page-via-extra-query", lambda c: c.events.list(extra_query={"page": 2}), "extra_query"
    ),
    CallRow(
        "per-page-0-via-default-query",
        lambda c: c.with_options(default_query={"per_page": "0"}).events.list(),
        ventryx.BadRequestError,
        1,
    ),
]


@pytest.mark.parametrize("row", CALL_ROWS, ids=lambda r: r.id)
async def test_call_arguments(make_client, server: LocalServer, row: CallRow) -> None:
    if row.server:
        server.configure(**row.server)
    client = make_client(max_retries=2)
    with anyio.fail_after(20):
        if row.error is None:
            result = await row.call(client)
            assert result.id
        else:
            with pytest.raises(row.error) as info:
                await row.call(client)
            if row.param is not None:
                assert isinstance(info.value, ventryx.InvalidInputError)
                assert info.value.param == row.param
                assert row.param in str(info.value)
    assert sum(server.ledger.attempts.values()) == row.sent
    if row.id_sent is not None:
        (request,) = server.ledger.requests
        prefix, _, segment = request.path.rpartition("/")
        assert prefix in ("/v1/workflows", "/v1/events")
        assert unquote(segment) == row.id_sent
    assert server.ledger.events == [] or row.error is None


# -- responses the local server never gives (httpx.MockTransport) -----------------------------
Answer = Callable[[], httpx.Response]


@dataclass(frozen=True)
class ResponseRow:
    """An answer and what a call receiving it must give."""

    id: str
    answer: Answer
    call: Call
    error: type[Exception] | None
    check: Callable[[Any], object] = lambda _: True


def _json(status: int, body: Any, **headers: str) -> Answer:
    return lambda: httpx.Response(status, json=body, headers={"x-request-id": "req_t", **headers})


def _raw(status: int, content: bytes, ctype: str = "application/json", **headers: str) -> Answer:
    return lambda: httpx.Response(
        status, content=content, headers={"content-type": ctype, **headers}
    )


def _get_event(c: Any) -> Awaitable[Any]:
    return c.events.retrieve("evt_1")


def _get_workflow(c: Any) -> Awaitable[Any]:
    return c.workflows.retrieve("wf_1")


def _list_workflows(c: Any) -> Awaitable[Any]:
    return c.workflows.list()


def _code(code: str, status: int) -> Callable[[Any], object]:
    def check(exc: Any) -> None:
        assert (exc.status_code, exc.code) == (status, code)
        assert code in str(exc)

    return check


def _workflow_extra(wf: Any) -> None:
    assert wf.extra == {"labels": ["a"], "owner": {"team": "growth"}}
    assert wf.trigger.extra == {"filter": {"plan": "pro"}}
    assert wf.steps[1] == Step("teleport", {"to": "mars", "speed": 9})


def _page_extra(page: Any) -> None:
    assert page.meta.extra == {"next_cursor": "abc"}
    assert page.data[0].extra == {"shard": 3}


def _message_says_non_json(exc: Any) -> None:
    assert "non-JSON" in exc.message


DEEP = b"[" * 100_000 + b"]" * 100_000
INVALID = ventryx.APIResponseValidationError
EXOTIC_WORKFLOW = {
    **WORKFLOW,
    "labels": ["a"],
    "owner": {"team": "growth"},
    "trigger": {"event": "e", "filter": {"plan": "pro"}},
    "steps": [STEP, {"type": "teleport", "to": "mars", "speed": 9}],
}
RESPONSE_ROWS = [
    ResponseRow("200-text-not-json", _raw(200, b"OK", "text/plain"), _get_event, INVALID),
    ResponseRow("200-empty-body", _raw(200, b""), _get_event, INVALID),
    ResponseRow("200-json-null", _raw(200, b"null"), _get_event, INVALID),
    ResponseRow("200-data-a-string", _json(200, {"data": "evt_1"}), _get_event, INVALID),
    ResponseRow("200-html", _raw(200, b"<html>down</html>", "text/html"), _list_workflows, INVALID),
    ResponseRow("200-deeply-nested-json", _raw(200, DEEP), _get_event, INVALID),
    ResponseRow("500-deeply-nested-json", _raw(500, DEEP), _get_event, ventryx.InternalServerError),
    ResponseRow(
        "500-not-utf8",
        _raw(500, b"\xff\xfe\x00garbage", "text/plain"),
        _get_event,
        ventryx.InternalServerError,
        _message_says_non_json,
    ),
    ResponseRow("list-without-meta", _json(200, {"data": [WORKFLOW]}), _list_workflows, INVALID),
    ResponseRow(
        "list-data-an-object",
        _json(200, {"data": WORKFLOW, "meta": META}),
        _list_workflows,
        INVALID,
    ),
    ResponseRow(
        "steps-not-a-list", _json(200, {"data": {**WORKFLOW, "steps": "x"}}), _get_workflow, INVALID
    ),
    ResponseRow(
        "step-without-type",
        _json(200, {"data": {**WORKFLOW, "steps": [{}]}}),
        _get_workflow,
        INVALID,
    ),
    ResponseRow(
        "deleted-as-a-string",
        _json(200, {"data": {"id": "wf_1", "deleted": "false"}}),
        lambda c: c.workflows.delete("wf_1"),
        INVALID,
    ),
    ResponseRow(
        "unknown-fields-kept",
        _json(200, {"data": EXOTIC_WORKFLOW}),
        _get_workflow,
        None,
        _workflow_extra,
    ),
    ResponseRow(
        "unknown-list-fields-kept",
        _json(200, {"data": [{**WORKFLOW, "shard": 3}], "meta": {**META, "next_cursor": "abc"}}),
        _list_workflows,
        None,
        _page_extra,
    ),
    ResponseRow(
        "json-with-wrong-content-type",
        _raw(200, json.dumps({"data": EVENT}).encode(), "text/plain"),
        _get_event,
        None,
        lambda event: event.id == "evt_1" or pytest.fail("not decoded"),
    ),
    ResponseRow(
        "unknown-code-403",
        _json(403, {"error": {"code": "account_frozen", "message": "Frozen."}}),
        _get_event,
        ventryx.PermissionDeniedError,
        _code("account_frozen", 403),
    ),
    ResponseRow(
        "unknown-code-unknown-status",
        _json(451, {"error": {"code": "legal_hold", "message": "No."}}),
        _get_event,
        ventryx.APIStatusError,
        _code("legal_hold", 451),
    ),
    ResponseRow(
        "redirect-not-followed",
        _raw(307, b"", location="https://evil.example/v1/events/evt_1"),
        _get_event,
        ventryx.APIStatusError,
        lambda exc: exc.status_code == 307 or pytest.fail("wrong status"),
    ),
]


@pytest.mark.parametrize("row", RESPONSE_ROWS, ids=lambda r: r.id)
async def test_responses(row: ResponseRow) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return row.answer()

    policy = ventryx.RetryPolicy(initial_delay=0.01, max_delay=0.02)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncVentryx(
        KEY, base_url="https://api.ventryx.io/v1", http_client=http, retry_policy=policy
    )
    async with http, client:
        with anyio.fail_after(10):
            if row.error is None:
                row.check(await row.call(client))
            else:
                with pytest.raises(row.error) as info:
                    await row.call(client)
                assert type(info.value) is row.error
                row.check(info.value)
    retried = row.error is ventryx.InternalServerError
    assert len(seen) == (3 if retried else 1)
    assert all(r.url.host == "api.ventryx.io" for r in seen)


# -- answers below JSON: a scripted raw socket server -----------------------------------------
def _http(status: str, body: bytes, ctype: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


REDIRECT = (
    b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)
RAW_ROWS = [
    # (id, raw answer, error, connections: attempts the server must have seen)
    ("not-http-at-all", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", ventryx.APIConnectionError, 3),
    ("closed-without-answer", b"", ventryx.APIConnectionError, 3),
    ("200-not-json", _http("200 OK", b"hello", "text/plain"), INVALID, 1),
    ("200-wrong-shape", _http("200 OK", b'{"data": 1}'), INVALID, 1),
    ("body-cut-short", _http("200 OK", b'{"data": {}}')[:-3], ventryx.APIConnectionError, 3),
    ("302-to-elsewhere", REDIRECT, ventryx.APIStatusError, 1),
]


@pytest.mark.parametrize(
    ("answer", "error", "connections"), [pytest.param(*row[1:], id=row[0]) for row in RAW_ROWS]
)
async def test_raw_answers(make_client, scripted_server, answer, error, connections) -> None:
    raw = scripted_server(answer)
    client = make_client(base_url=raw.base_url, max_retries=2, timeout=5.0)
    with anyio.fail_after(20), pytest.raises(error) as info:
        await client.events.retrieve("evt_1")
    assert type(info.value) is error
    assert raw.connections == connections


def test_the_tables_are_big_enough() -> None:
    rows = len(CONFIG_ROWS) + len(CALL_ROWS) + len(RESPONSE_ROWS) + len(RAW_ROWS)
    assert rows >= 40
    assert len({r.id for r in CALL_ROWS}) == len(CALL_ROWS)
    assert sys.getrecursionlimit() < 100_000  # DEEP really is deeper than json can decode


# -- issue 14: settings of copies, bulk arguments, keys that must not be replaced -------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"retry_policy": "fast"}, ventryx.ConfigurationError),
        ({"timeout": float("inf")}, ventryx.InvalidInputError),
        ({"call_timeout": -1}, ventryx.InvalidInputError),
        ({"max_response_bytes": "big"}, ventryx.InvalidInputError),
    ],
    ids=["retry-policy-string", "timeout-infinite", "call-timeout-negative", "max-bytes-str"],
)
async def test_with_options_checks_at_once(
    make_client, kwargs: dict[str, Any], error: type
) -> None:
    with pytest.raises(error) as info:
        make_client().with_options(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_a_password_in_the_base_url_is_never_echoed() -> None:
    for url in ("ftp://user:hunter2pass@api.example/v1", "https://user:hunter2pass@api.example/v1"):
        with pytest.raises(ventryx.ConfigurationError) as info:
            AsyncVentryx(KEY, base_url=url)
        assert "hunter2pass" not in str(info.value)


BULK_ROWS = [
    ("summary-string", {"summary": "x"}, "summary"),
    ("events-dict", {"events": {"type": "t", "data": {}}}, "events"),
    ("events-new-event", {"events": ventryx.NewEvent(type="t")}, "events"),
    ("on-result-not-callable", {"on_result": "print"}, "on_result"),
    ("on-progress-not-callable", {"on_progress": 5}, "on_progress"),
    ("concurrency-million", {"concurrency": 10**6}, "concurrency"),
]


@pytest.mark.parametrize("row", BULK_ROWS, ids=lambda r: r[0])
async def test_emit_many_arguments_are_checked_before_sending(
    make_client, server: LocalServer, row: tuple[str, dict[str, Any], str]
) -> None:
    _, kwargs, param = row
    kwargs = {"events": [{"type": "t"}] * 3, **kwargs}
    with anyio.fail_after(20), pytest.raises(ventryx.InvalidInputError) as info:
        await make_client().events.emit_many(**kwargs)
    assert info.value.param == param
    assert sum(server.ledger.attempts.values()) == 0


async def test_emit_many_needs_no_more_workers_than_events(
    make_client, server: LocalServer
) -> None:
    with anyio.fail_after(20):
        summary = await make_client().events.emit_many([{"type": "t"}] * 10, concurrency=1024)
    assert summary.delivered == 10
    assert summary.max_in_flight <= 10


async def test_an_idempotency_key_in_extra_headers_is_the_key(
    make_client, server: LocalServer
) -> None:
    client = make_client()
    await client.events.emit(type="t", extra_headers={"Idempotency-Key": "mine-1"})
    await client.events.emit(
        type="t", idempotency_key="mine-2", extra_headers={"idempotency-key": "mine-2"}
    )
    keys = [r.idempotency_key for r in server.ledger.requests if r.method == "POST"]
    assert keys == ["mine-1", "mine-2"]

"""The lean request and answer of ``_wire.py`` are what httpx's own constructors would make.

The pipeline builds its ``httpx.Request`` without httpx's ``__init__`` (issue 19: parsing the
URL and the headers twice was a fifth of a call on the aiohttp transport), so these compare it,
header by header and in order, with the ``httpx.Request(content=...)`` it replaces.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ventryx import AsyncVentryx, InvalidInputError
from ventryx._pipeline import Pipeline, encode_body
from ventryx._wire import Incoming, Outgoing
from ventryx.testing import LocalServer

BASE = "http://127.0.0.1:9/v1"


@pytest.fixture
def pipeline() -> Pipeline:
    client = AsyncVentryx("sk_test_wire", base_url=BASE, default_headers={"X-Team": "a"})
    return client._pipeline  # pyright: ignore[reportPrivateUsage]


CASES: list[dict[str, Any]] = [
    {"method": "POST", "path": "/events", "body": {"type": "t", "data": {"é": [1, {"k": None}]}}},
    {"method": "POST", "path": "/workflows/wf_1/run"},  # no body: Content-Length: 0
    {"method": "GET", "path": "/workflows", "params": {"page": 2, "per_page": 5}},
    {"method": "DELETE", "path": "/workflows/wf_1", "idempotency_key": "k-1"},
    {"method": "PATCH", "path": "/workflows/wf_1", "body": {"name": "n"}},
    {"method": "GET", "path": "/events", "extra_headers": {"Host": "elsewhere.example"}},
    {"method": "POST", "path": "/events", "body": {"a": 1}, "extra_headers": {"X-Extra": "1"}},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['method']} {c['path']}")
def test_the_request_is_the_one_httpx_would_build(pipeline: Pipeline, case: dict[str, Any]) -> None:
    method, path = case["method"], case["path"]
    kwargs = {k: v for k, v in case.items() if k not in ("method", "path", "extra_headers")}
    call = pipeline.call_options({"extra_headers": case.get("extra_headers", {})})
    built = pipeline.build_request(method, path, call, **kwargs)
    assert isinstance(built, Outgoing)
    pairs = list(built.header_pairs())
    # httpx's own construction from the same parts (what build_request did before).
    reference = httpx.Request(
        method,
        built.url,
        content=built.content or None,
        headers=[(k, v) for k, v in pairs if k not in ("host", "content-length")]
        + [(k, v) for k, v in pairs if k == "host" and "Host" in case.get("extra_headers", {})],
    )
    assert built.text == str(built.url) == str(reference.url)
    assert [(k.lower(), v) for k, v in built.headers.raw] == [
        (k.lower(), v) for k, v in reference.headers.raw
    ]
    assert built.content == reference.content
    assert b"".join(built.stream) == built.content  # type: ignore[arg-type]


def test_headers_changed_after_reading_are_the_ones_sent(pipeline: Pipeline) -> None:
    built = pipeline.build_request("GET", "/events")
    built.headers["x-late"] = "yes"  # what an httpx auth flow or event hook may do
    assert ("x-late", "yes") in list(built.header_pairs())
    built.headers = httpx.Headers({"only": "this"})
    assert list(built.header_pairs()) == [("only", "this")]


def test_query_values_that_compare_equal_keep_their_own_spelling(pipeline: Pipeline) -> None:
    urls = [
        str(pipeline.build_request("GET", "/events", params={"x": value}).url)
        for value in (1, True, 1.0, 1, "1")
    ]
    assert urls == [f"{BASE}/events?x={v}" for v in ("1", "true", "1.0", "1", "1")]


def test_an_incoming_answer_reads_as_httpx_reads_it() -> None:
    request = httpx.Request("GET", f"{BASE}/events")
    raw = [(b"Content-Type", b"application/json"), (b"X-Request-Id", b"req_1"), (b"Set", b"a")]
    answer = Incoming(201, raw, request, {"http_version": b"HTTP/1.1"}, httpx.ByteStream(b""))
    answer._content = b'{"ok": true}'  # pyright: ignore[reportPrivateUsage]  # as set_content
    reference = httpx.Response(201, headers=raw, request=request, stream=httpx.ByteStream(b""))
    assert answer.headers.raw == reference.headers.raw
    assert answer.headers["x-request-id"] == "req_1"
    assert (answer.status_code, answer.is_success, answer.json()) == (201, True, {"ok": True})
    assert answer.request is request
    assert answer.reason_phrase == "Created"
    assert answer.http_version == "HTTP/1.1"
    answer.headers = {"a": "b"}
    assert answer.headers["a"] == "b"


def test_the_transports_default_headers_changed_between_calls_are_sent(pipeline: Pipeline) -> None:
    """The merge with the shim's (an httpx client's) headers is redone when they change."""
    shared = pipeline.shim.headers

    def sent() -> dict[str, str]:
        return dict(pipeline.build_request("GET", "/events").header_pairs())

    assert "x-late" not in sent()
    shared["X-Late"] = "1"  # changed in place
    assert sent()["x-late"] == "1"
    shared["X-Late"] = "2"
    assert sent()["x-late"] == "2"
    del shared["X-Late"]
    assert "x-late" not in sent()
    shared.update({"X-Team": "ignored"})  # the client's own default headers still win
    assert sent()["x-team"] == "a"


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": [1, "\xc3\xa9"]}',
        '{"a": 1}'.encode("utf-16-le"),  # '{' then NUL: not UTF-8
        '{"a": 1}'.encode("utf-16"),  # with a BOM
        '{"a": 1}'.encode("utf-32"),
        b'\xef\xbb\xbf{"a": 1}',  # UTF-8 with a BOM
        b"[1, 2]",
        b" {}",
        b"{",
        b'{"a": "\xff"}',  # not UTF-8
        b'{"a": 1} x',
        b'{"a": 1}\r\n ',  # whitespace after the document
        b'{"a": 1}{"b": 2}',
        b'{"a": {"b": [1, 2.5, null, true]}, "c": "\\u00e9"}',
        b"",
    ],
)
def test_the_body_is_decoded_as_response_json_decodes_it(content: bytes) -> None:
    from ventryx._pipeline import _json_of  # pyright: ignore[reportPrivateUsage]

    response = httpx.Response(200, content=content)
    try:
        expected: object = response.json()
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _json_of(response)
    else:
        assert _json_of(response) == expected


def test_aiohttp_timeouts_left_out_only_where_the_deadline_comes_first() -> None:
    pytest.importorskip("aiohttp")
    import math

    from ventryx._shim_aiohttp import AiohttpShim

    shim = AiohttpShim(base_url=BASE, limits=httpx.Limits())
    request = httpx.Request(
        "GET", BASE, extensions={"timeout": httpx.Timeout(30.0, connect=5.0).as_dict()}
    )
    bounded = shim._timeout(request, 29.5)  # pyright: ignore[reportPrivateUsage]
    # The pool wait (30 s) and the reads (30 s) cannot outlast the 29.5 s left: no timers.
    assert (bounded.total, bounded.connect, bounded.sock_connect, bounded.sock_read) == (
        29.5,
        None,
        5.0,
        None,
    )
    assert bounded.ceil_threshold == math.inf  # the total ends at the deadline, not rounded up
    short = shim._timeout(request, 40.0)  # pyright: ignore[reportPrivateUsage]
    assert (short.connect, short.sock_read) == (30.0, 30.0)  # shorter than what is left: kept
    unbounded = shim._timeout(request, None)  # pyright: ignore[reportPrivateUsage]
    assert (unbounded.total, unbounded.connect, unbounded.sock_read) == (None, 30.0, 30.0)


@pytest.mark.anyio
async def test_aiohttp_adds_no_header_of_its_own(server: LocalServer, anyio_backend: str) -> None:
    """Without its per-request skip list, aiohttp still sends only the pipeline's headers: a
    POST without a body gets no Content-Type, and headers changed after building (read as
    httpx.Headers, a User-Agent taken out) get none of aiohttp's defaults either."""
    pytest.importorskip("aiohttp")
    if anyio_backend != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    from ventryx._shim_aiohttp import AiohttpShim

    async with AsyncVentryx(server.api_key, base_url=server.base_url, transport="aiohttp") as sdk:
        pipeline = sdk._pipeline  # pyright: ignore[reportPrivateUsage]
        assert isinstance(pipeline.shim, AiohttpShim)
        await sdk.events.emit(type="t")
        bare = pipeline.build_request("POST", "/events")  # no body
        await pipeline.shim.send(bare, deadline=None, max_bytes=1 << 20)
        edited = pipeline.build_request("GET", "/events")
        del edited.headers["user-agent"]
        del edited.headers["accept"]
        await pipeline.shim.send(edited, deadline=None, max_bytes=1 << 20)
    emit, post, get = (dict(r.headers) for r in server.ledger.requests)
    assert emit["content-type"] == "application/json"
    assert emit["user-agent"].startswith("ventryx-python/")
    assert "content-type" not in post
    assert post["content-length"] == "0"
    assert "user-agent" not in get
    assert "accept" not in get
    assert get["accept-encoding"] == "gzip, deflate"


def test_aiohttp_total_is_the_time_left_in_whole_milliseconds_never_zero() -> None:
    """The deadline's total is rounded down to the millisecond, so consecutive attempts find
    the timeout they had; with less than a millisecond left it is the time left (to aiohttp a
    total of 0 would mean none at all)."""
    pytest.importorskip("aiohttp")
    from ventryx._shim_aiohttp import AiohttpShim

    shim = AiohttpShim(base_url=BASE, limits=httpx.Limits())
    spec = httpx.Timeout(30.0, connect=5.0).as_dict()
    request = httpx.Request("GET", BASE, extensions={"timeout": spec})
    first = shim._timeout(request, 29.9996)  # pyright: ignore[reportPrivateUsage]
    assert first.total == 29.999
    assert shim._timeout(request, 29.9991) is first  # pyright: ignore[reportPrivateUsage]
    later = shim._timeout(request, 29.9989)  # pyright: ignore[reportPrivateUsage]
    assert later.total == 29.998
    other = httpx.Request("GET", BASE, extensions={"timeout": httpx.Timeout(0.5).as_dict()})
    changed = shim._timeout(other, 29.9981)  # pyright: ignore[reportPrivateUsage]
    assert (changed.total, changed.connect, changed.sock_read) == (29.998, 0.5, 0.5)
    tiny = shim._timeout(request, 0.0004)  # pyright: ignore[reportPrivateUsage]
    assert tiny.total == 0.0004
    assert shim._timeout(request, 0.0002).total == 0.0002  # pyright: ignore[reportPrivateUsage]


class _Tagged(str):
    """A ``str`` subclass with its own ``str()``: aiohttp would send that, not the value."""

    __slots__ = ()

    def __str__(self) -> str:
        return "tag"


def test_aiohttp_headers_are_plain_strings_with_their_real_values(pipeline: Pipeline) -> None:
    pytest.importorskip("aiohttp")
    from multidict import CIMultiDict

    from ventryx._shim_aiohttp import _plain  # pyright: ignore[reportPrivateUsage]

    call = pipeline.call_options({"extra_headers": {"X-Tagged": _Tagged("real")}})
    for request in (
        pipeline.build_request("POST", "/events", body={"type": "t"}),
        pipeline.build_request("GET", "/events", call),
    ):
        headers, complete = _plain(request)
        assert type(headers) is CIMultiDict
        assert {type(value) for value in headers.values()} == {str}
        assert headers["authorization"] == "Bearer sk_test_wire"
        assert complete
        expected = [(n, str.__str__(v)) for n, v in request.header_pairs()]
        assert list(headers.items()) == expected
    assert headers["x-tagged"] == "real"


@pytest.mark.anyio
async def test_aiohttp_session_takes_the_shims_headers_as_they_are(
    server: LocalServer, anyio_backend: str
) -> None:
    """The shim's own CIMultiDict goes to the request unmerged; anything else (aiohttp's proxy
    headers) through aiohttp's merge; and the server sees the real values either way."""
    pytest.importorskip("aiohttp")
    if anyio_backend != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    from multidict import CIMultiDict

    from ventryx._shim_aiohttp import AiohttpShim

    async with AsyncVentryx(server.api_key, base_url=server.base_url, transport="aiohttp") as sdk:
        await sdk.events.emit(type="t", extra_headers={"X-Tagged": _Tagged("real")})
        shim = sdk._pipeline.shim  # pyright: ignore[reportPrivateUsage]
        assert isinstance(shim, AiohttpShim)
        session = shim._session  # pyright: ignore[reportPrivateUsage]
        assert session is not None
        prepare = session._prepare_headers  # pyright: ignore[reportPrivateUsage]
        given: CIMultiDict[str] = CIMultiDict([("a", "1")])
        assert prepare(given) is given
        assert dict(prepare({"b": "2"})) == {"b": "2"}
        assert prepare(None) == CIMultiDict()
    (sent,) = server.ledger.requests
    assert sent.headers["x-tagged"] == "real"
    assert sent.status == 201  # the key arrived as it is (the ledger shows it redacted)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.text(), _JSON, max_size=4))
def test_the_body_is_encoded_as_json_dumps_would(body: dict[str, Any]) -> None:
    """The pipeline's encoder, made once, writes exactly what json.dumps with its options
    writes; and so does the fallback for a Python without json's C encoder."""
    import json

    from ventryx import _pipeline

    expected = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert encode_body(body) == expected.encode()
    made_once = _pipeline._ENCODE  # pyright: ignore[reportPrivateUsage]
    try:
        _pipeline._ENCODE = None  # pyright: ignore[reportPrivateUsage]
        assert encode_body(body) == expected.encode()
    finally:
        _pipeline._ENCODE = made_once  # pyright: ignore[reportPrivateUsage]


@pytest.mark.anyio
async def test_the_header_handover_leaves_the_session_free_of_cycles(anyio_backend: str) -> None:
    """A session dropped unclosed is freed (and warns) at once, not at some later collection;
    and setting the handover does not go through ClientSession.__setattr__ (debug-mode warning)."""
    pytest.importorskip("aiohttp")
    if anyio_backend != "asyncio":
        pytest.skip("aiohttp runs on asyncio only")
    import gc
    import warnings
    import weakref

    import aiohttp

    from ventryx._shim_aiohttp import _given_as_is  # pyright: ignore[reportPrivateUsage]

    session = aiohttp.ClientSession()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _given_as_is(session)
    await session.close()
    gone = weakref.ref(session)
    gc.disable()
    try:
        del session
        assert gone() is None
    finally:
        gc.enable()


def test_a_deep_body_is_encoded_and_one_that_contains_itself_refused_at_once() -> None:
    import json

    deep: dict[str, object] = {}
    for _ in range(300):  # deeper than the key check walks, not deeper than JSON goes
        deep = {"d": deep}
    assert encode_body({"data": deep}) == json.dumps({"data": deep}, separators=(",", ":")).encode()
    twice: dict[str, object] = {}
    twice["a"] = twice
    twice["b"] = twice  # walked naively, 2**200 paths
    with pytest.raises(InvalidInputError, match="Circular reference"):
        encode_body({"data": twice})

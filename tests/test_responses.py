"""Responses the local server never sends (unknown codes, wrong shapes), via httpx.MockTransport.

Pure logic: status and body in, exception or model out, so an in-process transport is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import ventryx
from ventryx import AsyncVentryx

pytestmark = pytest.mark.anyio

EVENT = {"id": "evt_1", "type": "t", "data": {}, "created_at": "2026-01-01T00:00:00Z"}


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> AsyncVentryx:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncVentryx(
        "vx_test", base_url="https://api.ventryx.io/v1", http_client=http, max_retries=0
    )


def _answer(status: int, body: Any = None, text: str | None = None, **headers: str) -> AsyncVentryx:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers={"x-request-id": "req_m", **headers})

    return _client(handler)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ventryx.BadRequestError),
        (401, ventryx.AuthenticationError),
        (403, ventryx.PermissionDeniedError),
        (404, ventryx.NotFoundError),
        (409, ventryx.ConflictError),
        (413, ventryx.PayloadTooLargeError),
        (418, ventryx.APIStatusError),
        (422, ventryx.UnprocessableEntityError),
        (429, ventryx.RateLimitError),
        (500, ventryx.InternalServerError),
        (599, ventryx.InternalServerError),
    ],
)
async def test_status_to_class_with_unknown_codes_verbatim(status: int, cls: type) -> None:
    client = _answer(status, {"error": {"code": "brand_new_code", "message": "Something new."}})
    with pytest.raises(cls) as info:
        await client.events.retrieve("evt_1")
    err = info.value
    assert type(err) is cls
    assert (err.status_code, err.code, err.message) == (status, "brand_new_code", "Something new.")
    assert err.request_id == "req_m"
    assert "brand_new_code" in str(err)


async def test_rate_limit_code_on_another_status_is_a_rate_limit_error() -> None:
    client = _answer(503, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
    with pytest.raises(ventryx.RateLimitError):
        await client.events.retrieve("evt_1")


@pytest.mark.parametrize(
    "body",
    [{"oops": 1}, {"error": "flat string"}, [1, 2], {"error": {"code": 5, "message": None}}],
)
async def test_error_bodies_of_the_wrong_shape_still_raise_by_status(body: Any) -> None:
    with pytest.raises(ventryx.BadRequestError) as info:
        await _answer(400, body).events.retrieve("evt_1")
    assert info.value.code is None
    assert info.value.body == body


async def test_empty_error_body() -> None:
    with pytest.raises(ventryx.InternalServerError, match="empty error body"):
        await _answer(500, text="").events.retrieve("evt_1")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"event": EVENT}, "no 'data' member"),
        ([EVENT], "no 'data' member"),
        ({"data": {**EVENT, "id": 12}}, "data.id"),
        ({"data": {**EVENT, "created_at": "yesterday"}}, "created_at"),
        ({"data": {**EVENT, "data": ["x"]}}, "data.data"),
        ({"data": {"id": "evt_1"}}, "type"),
        ({"data": None}, "Event"),
    ],
)
async def test_success_bodies_of_the_wrong_shape(body: Any, problem: str) -> None:
    with pytest.raises(ventryx.APIResponseValidationError) as info:
        await _answer(200, body).events.retrieve("evt_1")
    assert problem in str(info.value)
    assert info.value.body
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"data": [EVENT]},
        {"data": {}, "meta": {"total": 1, "page": 1, "per_page": 20}},
        {"data": [EVENT, {"id": 1}], "meta": {"total": 2, "page": 1, "per_page": 20}},
        {"data": [EVENT], "meta": {"total": "1", "page": 1, "per_page": 20}},
    ],
)
async def test_list_bodies_of_the_wrong_shape(body: Any) -> None:
    with pytest.raises(ventryx.APIResponseValidationError):
        await _answer(200, body).events.list()


async def test_unknown_fields_are_kept_and_any_2xx_is_success() -> None:
    body = {"data": {**EVENT, "region": "eu", "trace": {"a": 1}}, "later": True}
    event = await _answer(202, body).events.emit(type="t")
    assert event.extra == {"region": "eu", "trace": {"a": 1}}
    assert event.raw_response is not None
    assert event.raw_response.status_code == 202


async def test_timestamps_are_aware_in_every_offset_form() -> None:
    for stamp, hours in [
        ("2026-01-01T10:00:00Z", 0),
        ("2026-01-01T10:00:00.5+02:00", 2),
        ("2026-01-01t10:00:00.123456789-0130", -1.5),
        ("2026-01-01T10:00:00", 0),
    ]:
        event = await _answer(200, {"data": {**EVENT, "created_at": stamp}}).events.retrieve("e")
        offset = event.created_at.utcoffset()
        assert offset is not None
        assert offset.total_seconds() == hours * 3600

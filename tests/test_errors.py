"""Non-2xx answers become the right exception class, with the API's code carried verbatim."""

from __future__ import annotations

import pytest

import ventryx
from ventryx.testing import Fault, FaultRule, LocalServer, ServerConfig

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (500, ventryx.InternalServerError, "internal_error"),
        (502, ventryx.InternalServerError, "bad_gateway"),
        (503, ventryx.InternalServerError, "service_unavailable"),
        (504, ventryx.InternalServerError, "gateway_timeout"),
    ],
)
async def test_server_errors(make_client, server: LocalServer, status, cls, code) -> None:
    server.configure(faults=[FaultRule("GET /v1/workflows", fault=Fault("status", status=status))])
    client = make_client(max_retries=0)
    with pytest.raises(cls) as info:
        await client.workflows.list()
    err = info.value
    assert (err.status_code, err.code) == (status, code)
    assert err.request_id
    assert err.request_id in str(err)
    assert isinstance(err, ventryx.APIStatusError)


async def test_a_proxy_html_502_still_gives_the_right_class(
    make_client, server: LocalServer
) -> None:
    server.configure(faults=[FaultRule("GET /v1/workflows", fault=Fault("html_502"))])
    client = make_client(max_retries=0)
    with pytest.raises(ventryx.InternalServerError) as info:
        await client.workflows.list()
    assert info.value.status_code == 502
    assert info.value.code is None
    assert "non-JSON" in info.value.message
    assert isinstance(info.value.body, str)


async def test_not_found_and_unauthorized(make_client) -> None:
    client = make_client()
    with pytest.raises(ventryx.NotFoundError) as nf:
        await client.events.retrieve("evt_missing")
    assert nf.value.code == "not_found"
    with pytest.raises(ventryx.AuthenticationError):
        await make_client(api_key="vx_nope").events.list()


async def test_payload_too_large(make_client) -> None:
    with LocalServer(ServerConfig(max_body_bytes=2_000)) as small:
        client = make_client(base_url=small.base_url, api_key=small.api_key)
        with pytest.raises(ventryx.PayloadTooLargeError) as info:
            await client.events.emit(type="big", data={"blob": "x" * 5_000})
        assert info.value.code == "payload_too_large"
        assert small.ledger.attempts["POST /v1/events"] == 1


async def test_rate_limit_beyond_the_cap_reaches_the_caller_with_retry_after(
    make_client, server: LocalServer
) -> None:
    server.configure(
        faults=[FaultRule("POST /v1/events", fault=Fault("rate_limited", retry_after="3600"))]
    )
    client = make_client(max_retries=5)
    with pytest.raises(ventryx.RateLimitError) as info:
        await client.events.emit(type="t")
    assert info.value.retry_after == 3600.0
    assert info.value.code == "rate_limit_exceeded"
    assert server.ledger.attempts["POST /v1/events"] == 1


async def test_malformed_success_body_is_a_validation_error(
    make_client, server: LocalServer
) -> None:
    server.configure(faults=[FaultRule("POST /v1/events", fault=Fault("malformed_json"))])
    client = make_client(max_retries=0)
    with pytest.raises(ventryx.APIResponseValidationError) as info:
        await client.events.emit(type="t")
    assert info.value.status_code == 201
    assert info.value.body

"""The local server's API over real HTTP: every endpoint, validation, errors, pagination."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ventryx.testing import DEFAULT_TEST_KEY, LocalServer

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
WORKFLOW = {
    "name": "User onboarding",
    "trigger": {"event": "user.registered"},
    "steps": [{"type": "send_notification", "channel": "email", "template": "welcome"}],
}


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as client:
        yield client


def assert_error(resp: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    error = resp.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    if message is not None:
        assert error["message"] == message


def create_workflow(http: httpx.Client, **changes: Any) -> dict[str, Any]:
    resp = http.post("/workflows", json={**WORKFLOW, **changes})
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


# -- endpoints ------------------------------------------------------------------------------
def test_workflow_lifecycle(http: httpx.Client, server: LocalServer) -> None:
    steps = [
        {"type": "send_notification", "channel": "email", "template": "welcome"},
        {"type": "future_step_kind", "nested": {"keep": [1, 2, {"me": None}]}},
    ]
    created = create_workflow(
        http, steps=steps, trigger={"event": "user.registered", "filter": "plan=pro"}
    )
    assert re.fullmatch(r"wf_[0-9a-f]+", created["id"])
    assert created["name"] == "User onboarding"
    assert created["trigger"] == {"event": "user.registered", "filter": "plan=pro"}
    assert created["steps"] == steps
    assert RFC3339_Z.match(created["created_at"])
    assert "updated_at" not in created

    got = http.get(f"/workflows/{created['id']}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {"data": created}

    patched = http.patch(f"/workflows/{created['id']}", json={"name": "Renamed"})
    assert patched.status_code == 200
    updated = patched.json()["data"]
    assert updated["name"] == "Renamed"
    assert updated["steps"] == steps
    assert updated["trigger"] == created["trigger"]
    assert RFC3339_Z.match(updated["updated_at"])
    assert http.get(f"/workflows/{created['id']}").json()["data"] == updated

    new_steps = [{"type": "wait", "seconds": 5}]
    patched = http.patch(
        f"/workflows/{created['id']}", json={"steps": new_steps, "trigger": {"event": "x"}}
    )
    assert patched.json()["data"]["steps"] == new_steps
    assert patched.json()["data"]["trigger"] == {"event": "x"}

    deleted = http.delete(f"/workflows/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"data": {"id": created["id"], "deleted": True}}
    assert_error(http.get(f"/workflows/{created['id']}"), 404, "not_found")
    assert_error(http.delete(f"/workflows/{created['id']}"), 404, "not_found")
    assert_error(http.patch(f"/workflows/{created['id']}", json={"name": "x"}), 404, "not_found")

    ops = [(w["op"], w["id"]) for w in server.ledger.workflow_writes]
    assert ops == [
        ("create", created["id"]),
        ("update", created["id"]),
        ("update", created["id"]),
        ("delete", created["id"]),
    ]


def test_events_create_get_list_and_filter(http: httpx.Client, server: LocalServer) -> None:
    first = http.post("/events", json={"type": "user.registered", "data": {"user_id": "u1"}})
    assert first.status_code == 201
    event = first.json()["data"]
    assert re.fullmatch(r"evt_[0-9a-f]+", event["id"])
    assert event["type"] == "user.registered"
    assert event["data"] == {"user_id": "u1"}
    assert RFC3339_Z.match(event["created_at"])

    no_data = http.post("/events", json={"type": "order.paid"}).json()["data"]
    assert no_data["data"] == {}
    http.post("/events", json={"type": "user.registered", "data": {"user_id": "u2"}})

    assert http.get(f"/events/{event['id']}").json() == {"data": event}
    listing = http.get("/events").json()
    assert [e["type"] for e in listing["data"]] == [
        "user.registered",
        "order.paid",
        "user.registered",
    ]
    assert listing["meta"] == {"total": 3, "page": 1, "per_page": 20}
    filtered = http.get("/events", params={"type": "user.registered"}).json()
    assert [e["data"]["user_id"] for e in filtered["data"]] == ["u1", "u2"]
    assert filtered["meta"]["total"] == 2
    assert http.get("/events", params={"type": "nothing"}).json()["meta"]["total"] == 0

    ledger = server.ledger.events
    assert [e["id"] for e in ledger] == [e["id"] for e in listing["data"]]
    assert ledger[0] == {**event, "idempotency_key": None}
    assert server.ledger.duplicates == 0


def test_list_workflows_in_creation_order(http: httpx.Client) -> None:
    ids = [create_workflow(http, name=f"wf {i}")["id"] for i in range(5)]
    http.delete(f"/workflows/{ids[2]}")
    body = http.get("/workflows").json()
    assert [w["id"] for w in body["data"]] == ids[:2] + ids[3:]
    assert body["meta"] == {"total": 4, "page": 1, "per_page": 20}


def test_every_response_has_a_request_id(http: httpx.Client) -> None:
    seen = set()
    for resp in (
        http.get("/workflows"),
        http.get("/nope"),
        http.post("/events", content=b"{"),
        httpx.get(http.base_url.join("/v1/events")),
    ):
        assert re.fullmatch(r"req_[0-9a-f]+", resp.headers["x-request-id"])
        seen.add(resp.headers["x-request-id"])
    assert len(seen) == 4


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "/workflows", b"{not json", "request body must be valid JSON"),
        ("POST", "/workflows", b"", "request body must be valid JSON"),
        ("POST", "/workflows", b"\xff\xfe", "request body must be valid JSON"),
        ("POST", "/workflows", b"[1, 2]", "request body must be a JSON object"),
        ("POST", "/workflows", b'"text"', "request body must be a JSON object"),
        ("POST", "/workflows", {**WORKFLOW, "nmae": "x"}, "unknown field 'nmae'"),
        ("POST", "/workflows", {"trigger": {"event": "e"}, "steps": []}, "name is required"),
        ("POST", "/workflows", {**WORKFLOW, "name": ""}, "name must be a non-empty string"),
        ("POST", "/workflows", {**WORKFLOW, "name": 5}, "name must be a non-empty string"),
        ("POST", "/workflows", {"name": "n", "steps": []}, "trigger is required"),
        ("POST", "/workflows", {**WORKFLOW, "trigger": "e"}, "trigger must be an object"),
        (
            "POST",
            "/workflows",
            {**WORKFLOW, "trigger": {}},
            "trigger.event must be a non-empty string",
        ),
        (
            "POST",
            "/workflows",
            {**WORKFLOW, "trigger": {"event": ""}},
            "trigger.event must be a non-empty string",
        ),
        ("POST", "/workflows", {"name": "n", "trigger": {"event": "e"}}, "steps is required"),
        (
            "POST",
            "/workflows",
            {**WORKFLOW, "steps": {"type": "x"}},
            "steps must be a list of objects",
        ),
        ("POST", "/workflows", {**WORKFLOW, "steps": ["x"]}, "steps[0] must be an object"),
        (
            "POST",
            "/workflows",
            {**WORKFLOW, "steps": [{"type": "a"}, {"channel": "email"}]},
            "steps[1].type must be a non-empty string",
        ),
        (
            "POST",
            "/workflows",
            {**WORKFLOW, "steps": [{"type": 3}]},
            "steps[0].type must be a non-empty string",
        ),
        (
            "PATCH",
            "/workflows/{id}",
            {},
            "request body must set at least one of name, trigger, steps",
        ),
        ("PATCH", "/workflows/{id}", {"name": ""}, "name must be a non-empty string"),
        ("PATCH", "/workflows/{id}", {"id": "wf_x"}, "unknown field 'id'"),
        ("PATCH", "/workflows/{id}", {"steps": [{}]}, "steps[0].type must be a non-empty string"),
        ("PATCH", "/workflows/{id}", b"null", "request body must be a JSON object"),
        ("POST", "/events", {"data": {}}, "type is required"),
        ("POST", "/events", {"type": ""}, "type must be a non-empty string"),
        ("POST", "/events", {"type": ["a"]}, "type must be a non-empty string"),
        ("POST", "/events", {"type": "a", "data": [1]}, "data must be an object"),
        ("POST", "/events", {"type": "a", "data": None}, "data must be an object"),
        ("POST", "/events", {"type": "a", "dta": {}}, "unknown field 'dta'"),
        ("POST", "/events", b"{'type': 'a'}", "request body must be valid JSON"),
    ],
)
def test_validation_errors(
    http: httpx.Client, server: LocalServer, method: str, path: str, body: Any, message: str
) -> None:
    if "{id}" in path:
        path = path.replace("{id}", create_workflow(http)["id"])
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = http.request(method, path, content=content, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_request", message)
    assert server.ledger.events == []
    assert [w["op"] for w in server.ledger.workflow_writes] == (
        ["create"] if method == "PATCH" else []
    )


def test_authentication(server: LocalServer) -> None:
    url = server.base_url + "/events"
    missing = httpx.post(url, json={"type": "a"})
    assert_error(missing, 401, "authentication_failed")
    secret = "vx_live_do_not_echo_me"
    for header in (f"Bearer {secret}", f"Basic {secret}", secret, "Bearer"):
        resp = httpx.post(url, json={"type": "a"}, headers={"Authorization": header})
        assert_error(resp, 401, "authentication_failed")
        assert secret not in resp.text
        assert all(secret not in value for value in resp.headers.values())
    ok = httpx.post(
        url, json={"type": "a"}, headers={"Authorization": f"bearer {DEFAULT_TEST_KEY}"}
    )
    assert ok.status_code == 201
    assert len(server.ledger.events) == 1
    records = server.ledger.requests
    assert records[1].headers["authorization"] == "<redacted>"
    assert all(secret not in repr(r) and DEFAULT_TEST_KEY not in repr(r) for r in records)
    assert [r.status for r in records] == [401, 401, 401, 401, 401, 201]


def test_other_api_keys(server: LocalServer) -> None:
    server.configure(api_keys=frozenset({"k1", "k2"}))
    assert server.api_key == "k1"
    for key, status in (("k1", 201), ("k2", 201), (DEFAULT_TEST_KEY, 401)):
        resp = httpx.post(
            server.base_url + "/events",
            json={"type": "a", "data": {"k": key}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status_code == status


@pytest.mark.parametrize(
    "path",
    [
        "/v1/nope",
        "/v2/events",
        "/events",
        "/v1/events/",
        "/v1/workflows/",
        "/v1/events/x/y",
        "/",
        "/v1",
    ],
)
def test_unknown_route_is_404(http: httpx.Client, server: LocalServer, path: str) -> None:
    assert_error(http.get(server.url + path), 404, "not_found", "no such route")


def test_unknown_ids_are_404(http: httpx.Client) -> None:
    assert_error(http.get("/workflows/wf_missing"), 404, "not_found", "no workflow with this id")
    assert_error(http.get("/events/evt_missing"), 404, "not_found", "no event with this id")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/events", "GET, POST"),
        ("DELETE", "/v1/events", "GET, POST"),
        ("PATCH", "/v1/events/evt_1", "GET"),
        ("POST", "/v1/workflows/wf_1", "DELETE, GET, PATCH"),
        ("PUT", "/v1/workflows", "GET, POST"),
    ],
)
def test_wrong_method_is_405(
    http: httpx.Client, server: LocalServer, method: str, path: str, allow: str
) -> None:
    resp = http.request(method, server.url + path)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == allow


def test_route_errors_come_before_auth(server: LocalServer) -> None:
    assert_error(httpx.get(server.url + "/v1/nope"), 404, "not_found")
    assert_error(httpx.put(server.base_url + "/events"), 405, "method_not_allowed")
    assert_error(httpx.get(server.base_url + "/events"), 401, "authentication_failed")


@pytest.mark.parametrize(
    "raw_id", ["a%2Fb", "..%2Fevents", "..%2F..%2Fv1%2Fevents", "%2E%2E", "x%3Fy%23z"]
)
def test_encoded_ids_stay_on_their_route(
    http: httpx.Client, server: LocalServer, raw_id: str
) -> None:
    http.post("/events", json={"type": "a"})
    for method in ("GET", "PATCH", "DELETE"):
        resp = http.request(method, f"{server.url}/v1/workflows/{raw_id}", json={"name": "n"})
        assert_error(resp, 404, "not_found", "no workflow with this id")
    assert server.ledger.attempts["GET /v1/workflows/{id}"] == 1
    assert server.ledger.attempts["GET /v1/events"] == 0
    assert [r.path for r in server.ledger.requests][1] == f"/v1/workflows/{raw_id}"


def test_payload_too_large(server: LocalServer, http: httpx.Client) -> None:
    big = {"type": "big", "data": {"blob": "x" * 1_048_576}}
    assert_error(http.post("/events", json=big), 413, "payload_too_large")
    assert server.ledger.events == []
    # exactly at the limit is still parsed (and fails validation, not size)
    limit = server.app.config.max_body_bytes
    assert_error(http.post("/events", content=b" " * limit), 400, "invalid_request")
    # the connection pool recovers: the next request works
    assert http.post("/events", json={"type": "small"}).status_code == 201


def test_check_order_auth_then_size_then_validation(server: LocalServer) -> None:
    server.configure(max_body_bytes=100)
    url = server.base_url + "/events"
    too_big = b"{" + b" " * 200
    assert_error(httpx.post(url, content=too_big), 401, "authentication_failed")
    auth = {"Authorization": f"Bearer {server.api_key}"}
    assert_error(httpx.post(url, content=too_big, headers=auth), 413, "payload_too_large")
    assert_error(httpx.post(url, content=b"{", headers=auth), 400, "invalid_request")


# -- pagination -----------------------------------------------------------------------------
@pytest.fixture
def twenty_five_events(http: httpx.Client) -> list[str]:
    return [
        http.post("/events", json={"type": "p", "data": {"i": i}}).json()["data"]["id"]
        for i in range(25)
    ]


@pytest.mark.parametrize(
    ("query", "count", "meta", "first"),
    [
        ({}, 20, {"total": 25, "page": 1, "per_page": 20}, 0),
        ({"page": "2"}, 5, {"total": 25, "page": 2, "per_page": 20}, 20),
        ({"page": "3"}, 0, {"total": 25, "page": 3, "per_page": 20}, None),
        ({"page": "999", "per_page": "100"}, 0, {"total": 25, "page": 999, "per_page": 100}, None),
        ({"per_page": "1"}, 1, {"total": 25, "page": 1, "per_page": 1}, 0),
        ({"per_page": "1", "page": "25"}, 1, {"total": 25, "page": 25, "per_page": 1}, 24),
        ({"per_page": "100"}, 25, {"total": 25, "page": 1, "per_page": 100}, 0),
        ({"per_page": "10", "page": "3"}, 5, {"total": 25, "page": 3, "per_page": 10}, 20),
    ],
)
def test_pagination(
    http: httpx.Client,
    twenty_five_events: list[str],
    query: dict[str, str],
    count: int,
    meta: dict[str, int],
    first: int | None,
) -> None:
    body = http.get("/events", params=query).json()
    assert body["meta"] == meta
    assert len(body["data"]) == count
    ids = [e["id"] for e in body["data"]]
    if first is not None:
        assert ids == twenty_five_events[first : first + count]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("per_page", "0", "per_page must be an integer between 1 and 100"),
        ("per_page", "101", "per_page must be an integer between 1 and 100"),
        ("per_page", "-1", "per_page must be an integer between 1 and 100"),
        ("per_page", "abc", "per_page must be an integer between 1 and 100"),
        ("per_page", "2.5", "per_page must be an integer between 1 and 100"),
        ("per_page", "", "per_page must be an integer between 1 and 100"),
        ("page", "0", "page must be an integer >= 1"),
        ("page", "-3", "page must be an integer >= 1"),
        ("page", "abc", "page must be an integer >= 1"),
        ("page", "1e3", "page must be an integer >= 1"),
    ],
)
@pytest.mark.parametrize("path", ["/workflows", "/events"])
def test_bad_pagination(http: httpx.Client, path: str, name: str, value: str, message: str) -> None:
    resp = http.get(path, params={name: value})
    assert_error(resp, 400, "invalid_request", message)


# -- the published examples, sent with httpx ------------------------------------------------
def test_published_examples(server: LocalServer) -> None:
    client = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with client:
        listed = client.get("/workflows")
        assert listed.status_code == 200
        assert listed.json() == {"data": [], "meta": {"total": 0, "page": 1, "per_page": 20}}

        created = client.post(
            "/workflows",
            headers={"Content-Type": "application/json"},
            content=b"""{
    "name": "User onboarding",
    "trigger": { "event": "user.registered" },
    "steps": [
      { "type": "send_notification", "channel": "email", "template": "welcome" }
    ]
  }""",
        )
        assert created.status_code == 201
        workflow = created.json()["data"]
        assert workflow["id"].startswith("wf_")
        assert {k: workflow[k] for k in ("name", "trigger", "steps")} == WORKFLOW

        response = client.post(
            "/events",
            json={
                "type": "user.registered",
                "data": {"user_id": "usr_12345", "email": "[email protected]", "plan": "pro"},
            },
        )
        assert response.status_code == 201
        assert response.json()["data"]["id"].startswith("evt_")
        assert response.json()["data"]["data"]["plan"] == "pro"

        for i in range(142):
            client.post("/workflows", json={**WORKFLOW, "name": f"w{i}"})
        page = client.get("/workflows?page=2&per_page=50").json()
        assert page["meta"] == {"total": 143, "page": 2, "per_page": 50}
        assert len(page["data"]) == 50
        assert page["data"][0]["name"] == "w49"

        unauthorised = httpx.get(server.base_url + "/workflows")
        assert not unauthorised.is_success
        error = unauthorised.json()["error"]
        assert set(error) == {"code", "message"}

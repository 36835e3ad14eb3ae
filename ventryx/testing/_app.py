"""The in-memory Ventryx API: one ``handle`` shared by the ASGI adapter and the socket server."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote

import anyio
import attrs

from ventryx.testing._config import ServerConfig
from ventryx.testing._faults import AFTER_KINDS, STATUS_CODES, Fault, FaultPlan
from ventryx.testing._ledger import Ledger, RequestRecord
from ventryx.testing._ratelimit import Limiter, make_limiter

IDEMPOTENCY_TTL = 24 * 3600.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

# (path template, allowed methods); "{id}" matches one raw segment.
_ROUTES: dict[tuple[str, ...], tuple[str, frozenset[str]]] = {
    ("v1", "workflows"): ("/v1/workflows", frozenset({"GET", "POST"})),
    ("v1", "workflows", "{id}"): ("/v1/workflows/{id}", frozenset({"GET", "PATCH", "DELETE"})),
    ("v1", "events"): ("/v1/events", frozenset({"GET", "POST"})),
    ("v1", "events", "{id}"): ("/v1/events/{id}", frozenset({"GET"})),
    ("_testing", "ledger"): ("/_testing/ledger", frozenset({"GET"})),
    ("_testing", "reset"): ("/_testing/reset", frozenset({"POST"})),
}
_WORKFLOW_FIELDS = ("name", "trigger", "steps")
_EVENT_FIELDS = ("type", "data")
_IDEMPOTENT_METHODS = frozenset({"POST", "PATCH", "DELETE"})

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]


class SimulatedConnectionError(ConnectionError):
    """Raised by the ASGI adapter where a socket server would reset or cut the connection."""


@attrs.frozen
class Request:
    """A parsed HTTP request; ``path`` and ``query`` are raw (still percent-encoded)."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = attrs.field(factory=lambda: cast("dict[str, str]", {}))
    body: bytes = b""
    body_too_large: bool = False
    client: str | None = None


@attrs.frozen
class Response:
    """What to send; ``action`` asks the transport to reset or truncate instead."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    action: Literal["reset", "truncate"] | None = None


class _Invalid(Exception):
    """A 400 ``invalid_request`` with the message naming the field."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys: equal values give equal text."""
    return _CANONICAL.encode(value)


_second_cache: list[Any] = [-1, ""]


def _now() -> str:
    """RFC 3339 UTC with microseconds and "Z" (the seconds part is cached: this is hot)."""
    now = time.time()
    second = int(now)
    if _second_cache[0] != second:
        stamp = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache[:] = [second, stamp]
    return f"{_second_cache[1]}.{int((now - second) * 1e6):06d}Z"


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    base = [
        ("Content-Type", "application/json"),
        ("X-Request-Id", "req_" + os.urandom(8).hex()),
    ]
    return Response(status, base + (headers or []), _dumps(payload))


def _error(
    status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    return _json_response(status, {"error": {"code": code, "message": message}}, headers)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _check_trigger(value: Any) -> None:
    if not isinstance(value, dict):
        raise _Invalid("trigger must be an object")
    trigger = cast("dict[str, Any]", value)
    if not _non_empty_str(trigger.get("event")):
        raise _Invalid("trigger.event must be a non-empty string")


def _check_steps(value: Any) -> None:
    if not isinstance(value, list):
        raise _Invalid("steps must be a list of objects")
    items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
    for index, step in enumerate(items):
        if not isinstance(step, dict):
            raise _Invalid(f"steps[{index}] must be an object")
        if not _non_empty_str(cast("dict[str, Any]", step).get("type")):
            raise _Invalid(f"steps[{index}].type must be a non-empty string")


def _check_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _Invalid(f"unknown field {unknown[0]!r}")


def _validate_workflow(body: dict[str, Any], *, partial: bool) -> None:
    _check_fields(body, _WORKFLOW_FIELDS)
    if partial and not body:
        raise _Invalid("request body must set at least one of name, trigger, steps")
    for field in _WORKFLOW_FIELDS:
        if field not in body:
            if not partial:
                raise _Invalid(f"{field} is required")
            continue
        if field == "name" and not _non_empty_str(body["name"]):
            raise _Invalid("name must be a non-empty string")
        if field == "trigger":
            _check_trigger(body["trigger"])
        if field == "steps":
            _check_steps(body["steps"])


def _validate_event(body: dict[str, Any]) -> None:
    _check_fields(body, _EVENT_FIELDS)
    if "type" not in body:
        raise _Invalid("type is required")
    if not _non_empty_str(body["type"]):
        raise _Invalid("type must be a non-empty string")
    if "data" in body and not isinstance(body["data"], dict):
        raise _Invalid("data must be an object")


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise _Invalid("request body must be valid JSON") from None
    if not isinstance(value, dict):
        raise _Invalid("request body must be a JSON object")
    return cast("dict[str, Any]", value)


def _positive_int(params: dict[str, str], name: str, default: int, top: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (top is not None and value > top):
        if top is None:
            raise _Invalid(f"{name} must be an integer >= 1")
        raise _Invalid(f"{name} must be an integer between 1 and {top}")
    return value


@attrs.define
class _Stored:
    """An idempotency entry: in flight until ``status`` is set."""

    fingerprint: str
    expires: float
    status: int = 0
    body: bytes = b""


class VentryxApp:
    """The Ventryx API in memory, as an ASGI 3 app and as ``handle(request)``."""

    def __init__(
        self, config: ServerConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or ServerConfig()
        self.ledger = Ledger(self.config.record_requests)
        self._clock = clock
        self._lock = threading.Lock()
        self._workflows: dict[str, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._events_by_id: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[tuple[str, str], _Stored] = {}
        self._bucket = self._new_bucket()
        self._faults = FaultPlan(self.config.faults, self.config.seed)

    def _new_bucket(self) -> Limiter | None:
        limit = self.config.rate_limit
        return make_limiter(limit, self._clock()) if limit else None

    # -- control -------------------------------------------------------------------------
    def configure(self, **changes: Any) -> ServerConfig:
        """Replace config fields at runtime; the bucket and fault plan restart when changed."""
        with self._lock:
            old = self.config
            self.config = attrs.evolve(old, **changes)
            if "rate_limit" in changes:
                self._bucket = self._new_bucket()
            if "faults" in changes or "seed" in changes:
                self._faults = FaultPlan(self.config.faults, self.config.seed)
            self.ledger.record_requests = self.config.record_requests
            return self.config

    def reset(self) -> None:
        """Clear all data, the ledger, the idempotency store, the bucket and fault state."""
        with self._lock:
            self._workflows.clear()
            self._events.clear()
            self._events_by_id.clear()
            self._idempotency.clear()
            self._bucket = self._new_bucket()
            self._faults = FaultPlan(self.config.faults, self.config.seed)
            self.ledger.clear()

    @property
    def event_count(self) -> int:
        """How many events are stored."""
        return len(self._events)

    # -- the request pipeline ------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        """Answer one request; checks run in the order the API contract documents."""
        method = request.method
        segments = request.path.split("/")
        found = (
            _ROUTES.get(tuple("{id}" if i == 2 and s else s for i, s in enumerate(segments[1:])))
            if segments[0] == "" and len(segments) in (3, 4)
            else None
        )
        if found is None:
            self.ledger.attempt(f"{method} <unmatched>")
            return self._finish(request, _error(404, "not_found", "no such route"), None)
        template, allowed = found
        resource_id = unquote(segments[3]) if len(segments) == 4 else None
        if template.startswith("/_testing/"):
            return self._admin(request, template, allowed)
        route_key = f"{method} {template}"
        self.ledger.attempt(route_key)
        if method not in allowed:
            response = _error(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {template}",
                [("Allow", ", ".join(sorted(allowed)))],
            )
            return self._finish(request, response, None)

        with self._lock:
            limiter = self._bucket
            decision = limiter.admit(self._clock()) if limiter else None
            fault = (
                None if decision and not decision.allowed else self._faults.pick(method, template)
            )
        extra = decision.headers if decision else []
        if decision and not decision.allowed:
            self.ledger.add_rate_limited()
            response = _error(429, "rate_limit_exceeded", "rate limit exceeded, retry later", extra)
            return self._finish(request, response, None)
        if decision is not None and limiter is not None:  # in service for decision.hold
            try:
                await anyio.sleep(decision.hold)
            finally:
                with self._lock:
                    limiter.release(self._clock())
        if fault is not None:
            early = self._early_fault(fault, extra)
            if early is not None:
                return self._finish(request, early, fault.kind)

        api_key = self._authenticate(request.headers.get("authorization"))
        if api_key is None:
            message = (
                "missing API key: send 'Authorization: Bearer <key>'"
                if "authorization" not in request.headers
                else "invalid API key"
            )
            return self._finish(request, _error(401, "authentication_failed", message, extra), None)
        if request.body_too_large:
            message = f"request body exceeds {self.config.max_body_bytes} bytes"
            return self._finish(request, _error(413, "payload_too_large", message, extra), None)
        try:
            body = self._read_body(request, template)
            params = (
                dict(parse_qsl(request.query, keep_blank_values=True)) if method == "GET" else {}
            )
            response = await self._process(
                request=request,
                template=template,
                resource_id=resource_id,
                body=body,
                params=params,
                api_key=api_key,
                fault=fault,
                extra=extra,
            )
        except _Invalid as exc:
            response = _error(400, "invalid_request", str(exc), extra)
        applied: str | None = fault.kind if fault is not None and fault.kind == "delay" else None
        if fault is not None and fault.kind in AFTER_KINDS and 200 <= response.status < 300:
            response = self._late_fault(fault, response)
            applied = fault.kind
        return self._finish(request, response, applied)

    def _finish(self, request: Request, response: Response, fault: str | None) -> Response:
        if fault is not None:
            self.ledger.add_fault(fault)
        if self.ledger.record_requests:
            headers = dict(request.headers)
            if "authorization" in headers:
                headers["authorization"] = "<redacted>"
            status = 0 if response.action == "reset" else response.status
            self.ledger.record(
                RequestRecord(
                    request.method,
                    request.path,
                    request.query,
                    request.headers.get("idempotency-key"),
                    headers,
                    status,
                    fault,
                )
            )
        return response

    def _authenticate(self, header: str | None) -> str | None:
        if header is None:
            return None
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or key not in self.config.api_keys:
            return None
        return key

    def _read_body(self, request: Request, template: str) -> dict[str, Any] | None:
        if request.method in {"POST", "PATCH"}:
            body = _parse_body(request.body)
            if template == "/v1/events":
                _validate_event(body)
            else:
                _validate_workflow(body, partial=request.method == "PATCH")
            return body
        return None

    def _early_fault(self, fault: Fault, extra: list[tuple[str, str]]) -> Response | None:
        kind = fault.kind
        if kind == "status":
            code = STATUS_CODES[fault.status]
            headers = list(extra)
            if fault.retry_after is not None:
                headers.append(("Retry-After", fault.retry_after))
            return _error(fault.status, code, f"injected {code}", headers)
        if kind == "html_502":
            body = (
                b"<html><head><title>502 Bad Gateway</title></head><body>"
                b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                b"</body></html>\n"
            )
            headers = [
                ("Content-Type", "text/html"),
                ("X-Request-Id", "req_" + os.urandom(8).hex()),
            ]
            return Response(502, headers, body)
        if kind == "reset_before":
            return Response(0, [], b"", action="reset")
        if kind == "rate_limited":
            headers = list(extra)
            if fault.retry_after is not None:
                headers.append(("Retry-After", fault.retry_after))
            return _error(429, "rate_limit_exceeded", "rate limit exceeded, retry later", headers)
        return None

    def _late_fault(self, fault: Fault, response: Response) -> Response:
        if fault.kind == "reset_after":
            return Response(0, [], b"", action="reset")
        if fault.kind == "truncated":
            return attrs.evolve(response, action="truncate")
        # malformed_json: a success status and JSON content type over text that is not JSON
        return attrs.evolve(response, body=response.body[: max(1, len(response.body) // 2)])

    async def _process(
        self,
        *,
        request: Request,
        template: str,
        resource_id: str | None,
        body: dict[str, Any] | None,
        params: dict[str, str],
        api_key: str,
        fault: Fault | None,
        extra: list[tuple[str, str]],
    ) -> Response:
        method = request.method
        delay = fault.delay if fault is not None and fault.kind == "delay" else 0.0
        idem_key = request.headers.get("idempotency-key") if method in _IDEMPOTENT_METHODS else None
        if idem_key is None:
            if delay:
                await anyio.sleep(delay)
            with self._lock:
                return self._apply(
                    method=method,
                    template=template,
                    resource_id=resource_id,
                    body=body,
                    params=params,
                    idem_key=None,
                    extra=extra,
                )

        store_key = (api_key, idem_key)
        canonical = "" if body is None else canonical_json(body)
        fingerprint = f"{method} {request.path}\n{canonical}"
        with self._lock:
            now = self._clock()
            entry = self._idempotency.get(store_key)
            if entry is not None and entry.expires <= now:
                entry = None
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    return _error(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request",
                        extra,
                    )
                if entry.status == 0:
                    return _error(
                        409,
                        "idempotency_conflict",
                        "a request with this Idempotency-Key is still in progress",
                        extra,
                    )
                self.ledger.add_replay()
                headers = [
                    ("Content-Type", "application/json"),
                    ("X-Request-Id", "req_" + os.urandom(8).hex()),
                    ("Idempotent-Replayed", "true"),
                    *extra,
                ]
                return Response(entry.status, headers, entry.body)
            entry = _Stored(fingerprint, now + IDEMPOTENCY_TTL)
            self._idempotency[store_key] = entry
        response: Response | None = None
        try:
            if delay:
                await anyio.sleep(delay)
            with self._lock:
                response = self._apply(
                    method=method,
                    template=template,
                    resource_id=resource_id,
                    body=body,
                    params=params,
                    idem_key=idem_key,
                    extra=extra,
                )
                if 200 <= response.status < 300:
                    entry.status = response.status
                    entry.body = response.body
            return response
        finally:
            if response is None or not 200 <= response.status < 300:
                with self._lock:
                    if self._idempotency.get(store_key) is entry:
                        del self._idempotency[store_key]

    # -- effects (called under the lock) ------------------------------------------------
    def _apply(
        self,
        *,
        method: str,
        template: str,
        resource_id: str | None,
        body: dict[str, Any] | None,
        params: dict[str, str],
        idem_key: str | None,
        extra: list[tuple[str, str]],
    ) -> Response:
        if template == "/v1/events":
            if method == "POST":
                assert body is not None
                event = {
                    "id": _new_id("evt_"),
                    "type": body["type"],
                    "data": body.get("data", {}),
                    "created_at": _now(),
                }
                self._events.append(event)
                self._events_by_id[event["id"]] = event
                self.ledger.add_event(event, idem_key)
                return _json_response(201, {"data": event}, extra)
            kind = params.get("type")
            events = (
                self._events if kind is None else [e for e in self._events if e["type"] == kind]
            )
            return self._page(events, params, extra)
        if template == "/v1/events/{id}":
            assert resource_id is not None
            found = self._events_by_id.get(resource_id)
            if found is None:
                return _error(404, "not_found", "no event with this id", extra)
            return _json_response(200, {"data": found}, extra)
        if template == "/v1/workflows":
            if method == "POST":
                assert body is not None
                workflow = {
                    "id": _new_id("wf_"),
                    "name": body["name"],
                    "trigger": body["trigger"],
                    "steps": body["steps"],
                    "created_at": _now(),
                }
                self._workflows[workflow["id"]] = workflow
                self.ledger.add_workflow_write("create", workflow["id"], idem_key)
                return _json_response(201, {"data": workflow}, extra)
            return self._page(list(self._workflows.values()), params, extra)
        assert resource_id is not None
        current = self._workflows.get(resource_id)
        if current is None:
            return _error(404, "not_found", "no workflow with this id", extra)
        if method == "GET":
            return _json_response(200, {"data": current}, extra)
        if method == "DELETE":
            del self._workflows[resource_id]
            self.ledger.add_workflow_write("delete", resource_id, idem_key)
            return _json_response(200, {"data": {"id": resource_id, "deleted": True}}, extra)
        assert body is not None
        updated = {**current, **body, "updated_at": _now()}
        self._workflows[resource_id] = updated
        self.ledger.add_workflow_write("update", resource_id, idem_key)
        return _json_response(200, {"data": updated}, extra)

    def _page(
        self, items: list[dict[str, Any]], params: dict[str, str], extra: list[tuple[str, str]]
    ) -> Response:
        page = _positive_int(params, "page", 1, None)
        per_page = _positive_int(params, "per_page", 20, 100)
        start = (page - 1) * per_page
        payload = {
            "data": items[start : start + per_page],
            "meta": {"total": len(items), "page": page, "per_page": per_page},
        }
        return _json_response(200, payload, extra)

    def _admin(self, request: Request, template: str, allowed: frozenset[str]) -> Response:
        if request.client is not None and request.client not in LOOPBACK:
            return _error(404, "not_found", "no such route")
        if request.method not in allowed:
            return _error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {template}",
                [("Allow", ", ".join(sorted(allowed)))],
            )
        if template == "/_testing/reset":
            self.reset()
            return _json_response(200, {"data": {"reset": True}})
        snapshot = self.ledger.snapshot()
        snapshot["event_count"] = self.event_count
        return _json_response(200, {"data": snapshot})

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """ASGI 3 entry point; resets and truncations raise ``SimulatedConnectionError``."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
        limit = self.config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size <= limit:  # past the limit, drain without keeping (the sender may need it)
                chunks.append(chunk)
            more = bool(message.get("more_body", False))
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else str(scope["path"])
        path = path.partition("?")[0]
        client = scope.get("client")
        request = Request(
            method=str(scope["method"]).upper(),
            path=path,
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=b"".join(chunks),
            body_too_large=size > limit,
            client=str(client[0]) if client else None,
        )
        response = await self.handle(request)
        if response.action == "reset":
            raise SimulatedConnectionError("injected fault: connection reset by the local server")
        if response.action == "truncate":
            raise SimulatedConnectionError("injected fault: response body truncated")
        headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


def create_app(config: ServerConfig | None = None) -> VentryxApp:
    """A fresh in-memory API with ``config`` (defaults accept ``DEFAULT_TEST_KEY``)."""
    return VentryxApp(config)

"""The in-memory Ventryx API: one ``handle`` shared by the ASGI adapter and the socket server.

``handle`` runs the checks in the order the API contract documents, each from its own module:
the routes table (``_routes``), the rate limiter (``_ratelimit``: ``admit(now)`` then
``release(now)``, behind ``_new_bucket``), injected faults
(``_faults``), the idempotency store (``_idempotency``), the data and its effects (``_store``),
and the ledger of what was applied (``_ledger``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import anyio
import attrs

from ventryx.testing._asgi import ASGIReceive, ASGIScope, ASGISend, serve_asgi
from ventryx.testing._config import ServerConfig
from ventryx.testing._faults import AFTER_KINDS, Fault, FaultPlan, early_answer, late_answer
from ventryx.testing._idempotency import IDEMPOTENT_METHODS, IdempotencyStore, fingerprint
from ventryx.testing._ledger import Ledger, RequestRecord
from ventryx.testing._messages import (
    Invalid,
    Request,
    Response,
    canonical_json,
    error,
    json_response,
    request_id,
)
from ventryx.testing._ratelimit import Limiter, make_limiter
from ventryx.testing._routes import ADMIN_ROUTES, ROUTES, Endpoint, match, parse_body
from ventryx.testing._store import Call, Store

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _not_allowed(method: str, template: str, allowed: Iterable[str]) -> Response:
    return error(
        405,
        "method_not_allowed",
        f"{method} is not allowed on {template}",
        [("Allow", ", ".join(sorted(allowed)))],
    )


class VentryxApp:
    """The Ventryx API in memory, as an ASGI 3 app and as ``handle(request)``."""

    def __init__(
        self, config: ServerConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or ServerConfig()
        self.ledger = Ledger(self.config.record_requests)
        self._clock = clock
        self._lock = threading.Lock()
        self._store = Store(self.ledger)
        self._idempotency = IdempotencyStore()
        self._bucket = self._new_bucket()
        self._faults = FaultPlan(self.config.faults, self.config.seed)
        self._released = 0  # bumped by release_delayed(): held requests answer now

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
            self._store.clear()
            self._idempotency.clear()
            self._bucket = self._new_bucket()
            self._faults = FaultPlan(self.config.faults, self.config.seed)
            self.ledger.clear()

    def release_delayed(self) -> None:
        """Let every request the ``delay`` fault holds now go on at once (a test that has
        seen what it waited for need not wait out the rest of the delay)."""
        self._released += 1

    async def _hold(self, delay: float) -> None:
        """The ``delay`` fault: ``delay`` seconds, or until ``release_delayed()``."""
        generation = self._released
        deadline = anyio.current_time() + delay
        while self._released == generation:
            left = deadline - anyio.current_time()
            if left <= 0:
                return
            await anyio.sleep(min(left, 0.01))

    @property
    def event_count(self) -> int:
        """How many events are stored."""
        return len(self._store.events)

    # -- the request pipeline ------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        """Answer one request; checks run in the order the API contract documents."""
        method = request.method
        found = match(request.path)
        if found is None:
            self.ledger.attempt(f"{method} <unmatched>")
            return self._finish(request, error(404, "not_found", "no such route"), None)
        key, resource_id = found
        if key in ADMIN_ROUTES:
            return self._admin(request, key)
        route = ROUTES[key]
        template = route.template
        self.ledger.attempt(f"{method} {template}")
        endpoint = route.endpoints.get(method)
        if endpoint is None:
            return self._finish(request, _not_allowed(method, template, route.endpoints), None)

        with self._lock:
            limiter = self._bucket
            decision = limiter.admit(self._clock()) if limiter else None
            fault = (
                None if decision and not decision.allowed else self._faults.pick(method, template)
            )
        extra = decision.headers if decision else []
        if decision and not decision.allowed:
            self.ledger.add_rate_limited()
            response = error(429, "rate_limit_exceeded", "rate limit exceeded, retry later", extra)
            return self._finish(request, response, None)
        if decision is not None and limiter is not None:  # in service for decision.hold
            try:
                await anyio.sleep(decision.hold)
            finally:
                with self._lock:
                    limiter.release(self._clock())
        if fault is not None:
            early = early_answer(fault, extra)
            if early is not None:
                return self._finish(request, early, fault.kind)

        api_key = self._authenticate(request.headers.get("authorization"))
        if api_key is None:
            message = (
                "missing API key: send 'Authorization: Bearer <key>'"
                if "authorization" not in request.headers
                else "invalid API key"
            )
            return self._finish(request, error(401, "authentication_failed", message, extra), None)
        if request.body_too_large:
            message = f"request body exceeds {self.config.max_body_bytes} bytes"
            return self._finish(request, error(413, "payload_too_large", message, extra), None)
        try:
            body = None
            if endpoint.check is not None:
                body = parse_body(request.body)
                endpoint.check(body)
            params = (
                dict(parse_qsl(request.query, keep_blank_values=True)) if method == "GET" else {}
            )
            idem_key = (
                request.headers.get("idempotency-key") if method in IDEMPOTENT_METHODS else None
            )
            call = Call(resource_id, body, params, idem_key, extra)
            response = await self._process(request, api_key, endpoint, call, fault)
        except Invalid as exc:
            response = error(400, "invalid_request", str(exc), extra)
        applied: str | None = fault.kind if fault is not None and fault.kind == "delay" else None
        if fault is not None and fault.kind in AFTER_KINDS and 200 <= response.status < 300:
            response = late_answer(fault, response)
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

    async def _process(
        self, request: Request, api_key: str, endpoint: Endpoint, call: Call, fault: Fault | None
    ) -> Response:
        """The effect, through the idempotency store when the request has a key."""
        delay = fault.delay if fault is not None and fault.kind == "delay" else 0.0
        if call.idempotency_key is None:
            if delay:
                await self._hold(delay)
            with self._lock:
                return endpoint.effect(self._store, call)

        store_key = (api_key, call.idempotency_key)
        canonical = "" if call.body is None else canonical_json(call.body)
        with self._lock:
            state, entry = self._idempotency.claim(
                store_key, fingerprint(request.method, request.path, canonical), self._clock()
            )
            if state == "reused":
                message = "this Idempotency-Key was used with a different request"
                return error(422, "idempotency_key_reused", message, call.headers)
            if state == "in_flight":
                message = "a request with this Idempotency-Key is still in progress"
                return error(409, "idempotency_conflict", message, call.headers)
            if state == "replay":
                self.ledger.add_replay()
                headers = [
                    ("Content-Type", "application/json"),
                    request_id(),
                    ("Idempotent-Replayed", "true"),
                    *call.headers,
                ]
                return Response(entry.status, headers, entry.body)
        response: Response | None = None
        try:
            if delay:
                await self._hold(delay)
            with self._lock:
                response = endpoint.effect(self._store, call)
                if 200 <= response.status < 300:
                    entry.status = response.status
                    entry.body = response.body
            return response
        finally:
            if response is None or not 200 <= response.status < 300:
                with self._lock:
                    self._idempotency.release(store_key, entry)

    def _admin(self, request: Request, key: tuple[str, ...]) -> Response:
        template = "/" + "/".join(key)
        if request.client is not None and request.client not in LOOPBACK:
            return error(404, "not_found", "no such route")
        if request.method not in ADMIN_ROUTES[key]:
            return _not_allowed(request.method, template, ADMIN_ROUTES[key])
        if template == "/_testing/reset":
            self.reset()
            return json_response(200, {"data": {"reset": True}})
        snapshot = self.ledger.snapshot()
        snapshot["event_count"] = self.event_count
        return json_response(200, {"data": snapshot})

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """ASGI 3 entry point; see ``_asgi`` for how resets and truncations are raised."""
        await serve_asgi(self.handle, self.config.max_body_bytes, scope, receive, send)


def create_app(config: ServerConfig | None = None) -> VentryxApp:
    """A fresh in-memory API with ``config`` (defaults accept ``DEFAULT_TEST_KEY``)."""
    return VentryxApp(config)

"""Fault injection: which request fails how, scripted or seeded so a run is reproducible."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, get_args

import attrs

from ventryx.testing._messages import Response, error, request_id

FaultKind = Literal[
    "status",
    "html_502",
    "reset_before",
    "reset_after",
    "delay",
    "truncated",
    "malformed_json",
    "rate_limited",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# Faults that damage the answer after the effect is committed (and stored for replay); the
# others replace the answer before anything is processed, or (delay) only make it late.
AFTER_KINDS = frozenset({"reset_after", "truncated", "malformed_json"})
STATUS_CODES: dict[int, str] = {
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def _check_status(inst: Fault, _attr: object, status: int) -> None:
    if inst.kind == "status" and status not in STATUS_CODES:
        raise ValueError(f"a status fault needs one of {sorted(STATUS_CODES)}, got {status}")


@attrs.frozen
class Fault:
    """One injected failure; see the package docs for what each kind does."""

    kind: FaultKind = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))
    status: int = attrs.field(default=503, kw_only=True, validator=_check_status)
    delay: float = attrs.field(default=0.0, kw_only=True, validator=attrs.validators.ge(0.0))
    retry_after: str | None = attrs.field(default=None, kw_only=True)


def _check_route(_inst: object, _attr: object, route: str) -> None:
    if route == "*":
        return
    method, _, path = route.partition(" ")
    if not method or not path.startswith("/") or " " in path:
        raise ValueError(f"route must be '*' or 'METHOD /path' (METHOD may be '*'), got {route!r}")


def _to_sequence(seq: Sequence[Fault | None] | None) -> tuple[Fault | None, ...] | None:
    return None if seq is None else tuple(seq)


@attrs.frozen
class FaultRule:
    """Which requests get a fault: by route, then scripted (``sequence``) or by ``probability``."""

    route: str = attrs.field(default="*", validator=_check_route)
    fault: Fault | None = attrs.field(default=None, kw_only=True)
    probability: float = attrs.field(
        default=1.0,
        kw_only=True,
        validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)],
    )
    sequence: Sequence[Fault | None] | None = attrs.field(
        default=None, kw_only=True, converter=_to_sequence
    )

    def __attrs_post_init__(self) -> None:
        if (self.fault is None) == (self.sequence is None):
            raise ValueError("a FaultRule needs exactly one of fault= or sequence=")

    def matches(self, method: str, template: str) -> bool:
        """Whether a request with this method and route template falls under the rule."""
        if self.route == "*":
            return True
        want_method, _, want_path = self.route.partition(" ")
        if not want_path.startswith("/v1/"):
            want_path = "/v1" + want_path
        return want_path == template and want_method in ("*", method)


class FaultPlan:
    """The rules in force and their state (sequence positions, the seeded generator)."""

    def __init__(self, rules: Sequence[FaultRule], seed: int) -> None:
        self.rules = tuple(rules)
        self._random = random.Random(seed)
        self._seen = [0] * len(self.rules)

    def pick(self, method: str, template: str) -> Fault | None:
        """The fault for this request: the first matching rule that yields one wins."""
        for index, rule in enumerate(self.rules):
            if not rule.matches(method, template):
                continue
            if rule.sequence is not None:
                n = self._seen[index]
                self._seen[index] = n + 1
                fault = rule.sequence[n] if n < len(rule.sequence) else None
            elif rule.probability >= 1.0 or self._random.random() < rule.probability:
                fault = rule.fault
            else:
                fault = None
            if fault is not None:
                return fault
        return None


_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    b"</body></html>\n"
)


def early_answer(fault: Fault, extra: list[tuple[str, str]]) -> Response | None:
    """The answer that replaces processing, or None for the kinds that act later."""
    kind = fault.kind
    headers = list(extra)
    if fault.retry_after is not None:
        headers.append(("Retry-After", fault.retry_after))
    if kind == "status":
        code = STATUS_CODES[fault.status]
        return error(fault.status, code, f"injected {code}", headers)
    if kind == "rate_limited":
        return error(429, "rate_limit_exceeded", "rate limit exceeded, retry later", headers)
    if kind == "html_502":
        return Response(502, [("Content-Type", "text/html"), request_id()], _HTML_502)
    if kind == "reset_before":
        return Response(0, [], b"", action="reset")
    return None


def late_answer(fault: Fault, response: Response) -> Response:
    """A committed 2xx ``response`` damaged as an after-kind fault says."""
    if fault.kind == "reset_after":
        return Response(0, [], b"", action="reset")
    if fault.kind == "truncated":
        return attrs.evolve(response, action="truncate")
    # malformed_json: a success status and JSON content type over text that is not JSON
    return attrs.evolve(response, body=response.body[: max(1, len(response.body) // 2)])

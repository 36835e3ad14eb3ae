"""The fault matrix: every fault kind of the local server crossed with every operation.

Two tables (``FAULTS`` and ``OPERATIONS``) and one rule (``expected``) generate the cases; each
case runs the operation over real HTTP against the local server with the fault applied once
(``once``) or on every attempt (``always``) and checks the outcome, the attempts the server
saw, and that no write was applied twice. ``python tests/reliability/test_fault_matrix.py``
prints the matrix the rule predicts (the table in RELIABILITY.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import ventryx
from ventryx.testing import Fault, FaultRule, LocalServer

pytestmark = [pytest.mark.reliability, pytest.mark.anyio, pytest.mark.timeout(60)]

MAX_RETRIES = 2
POLICY = ventryx.RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=2.0)
# The delay fault answers after DELAY s; the client gives up after TIMEOUT s per attempt. All
# attempts of a write (with their backoff) must end well before the first one lands, even on a
# loaded machine, or the last retry meets the stored answer instead of a conflict. Each quick
# answer (a 409, a read's retry) must also come within TIMEOUT while the suite's workers share
# two cores: 0.25 s was once exceeded (0.30 s), so both bounds carry a wide margin. The test
# releases the held request once the call has ended (``release_delayed``), so the long DELAY
# costs no wall-clock time.
TIMEOUT = 0.6
DELAY = 10.0
# A timeout for every fault but ``delay``: generous, it only has to catch a hang.
SLACK_TIMEOUT = 10.0
STEP = {"type": "send_notification", "channel": "email", "template": "welcome"}
PAST_DATE = "Thu, 01 Jan 2015 00:00:00 GMT"  # an HTTP date already passed: retry at once
FAR_DATE = "Fri, 31 Dec 2100 23:59:59 GMT"  # an HTTP date beyond the Retry-After cap


@dataclass(frozen=True)
class FaultCase:
    """One row of the fault table: the server's fault and the error it maps to."""

    name: str
    fault: Fault
    error: type[ventryx.VentryxError]
    over_cap: bool = False  # a Retry-After beyond RetryPolicy.max_retry_after: never waited out

    @property
    def after_commit(self) -> bool:
        """The server applies the effect, then damages the answer."""
        return self.fault.kind in {"reset_after", "truncated", "malformed_json"}


FAULTS: list[FaultCase] = [
    FaultCase("status_500", Fault("status", status=500), ventryx.InternalServerError),
    FaultCase("status_502", Fault("status", status=502), ventryx.InternalServerError),
    FaultCase("status_503", Fault("status", status=503), ventryx.InternalServerError),
    FaultCase("status_504", Fault("status", status=504), ventryx.InternalServerError),
    FaultCase("html_502", Fault("html_502"), ventryx.InternalServerError),
    FaultCase("reset_before", Fault("reset_before"), ventryx.APIConnectionError),
    FaultCase("reset_after", Fault("reset_after"), ventryx.APIConnectionError),
    FaultCase("delay", Fault("delay", delay=DELAY), ventryx.APITimeoutError),
    FaultCase("truncated", Fault("truncated"), ventryx.APIConnectionError),
    FaultCase("malformed_json", Fault("malformed_json"), ventryx.APIResponseValidationError),
    FaultCase(
        "rate_limited_integer",
        Fault("rate_limited", retry_after="0"),
        ventryx.RateLimitError,
    ),
    FaultCase(
        "rate_limited_integer_over_cap",
        Fault("rate_limited", retry_after="3600"),
        ventryx.RateLimitError,
        over_cap=True,
    ),
    FaultCase(
        "rate_limited_fractional",
        Fault("rate_limited", retry_after="0.02"),
        ventryx.RateLimitError,
    ),
    FaultCase(
        "rate_limited_http_date",
        Fault("rate_limited", retry_after=PAST_DATE),
        ventryx.RateLimitError,
    ),
    FaultCase(
        "rate_limited_http_date_over_cap",
        Fault("rate_limited", retry_after=FAR_DATE),
        ventryx.RateLimitError,
        over_cap=True,
    ),
    FaultCase("rate_limited_absent", Fault("rate_limited"), ventryx.RateLimitError),
]

Call = Callable[[Any, dict[str, str]], Awaitable[Any]]


async def _wf_list(client: Any, ctx: dict[str, str]) -> Any:
    return await client.workflows.list(per_page=5)


async def _wf_create(client: Any, ctx: dict[str, str]) -> Any:
    return await client.workflows.create(name="matrix", trigger={"event": "e"}, steps=[STEP])


async def _wf_retrieve(client: Any, ctx: dict[str, str]) -> Any:
    return await client.workflows.retrieve(ctx["workflow_id"])


async def _wf_update(client: Any, ctx: dict[str, str]) -> Any:
    return await client.workflows.update(ctx["workflow_id"], name="renamed")


async def _wf_delete(client: Any, ctx: dict[str, str]) -> Any:
    return await client.workflows.delete(ctx["workflow_id"])


async def _ev_emit(client: Any, ctx: dict[str, str]) -> Any:
    return await client.events.emit(type="matrix", data={"case": ctx["case"]})


async def _ev_list(client: Any, ctx: dict[str, str]) -> Any:
    return await client.events.list(per_page=5)


async def _ev_retrieve(client: Any, ctx: dict[str, str]) -> Any:
    return await client.events.retrieve(ctx["event_id"])


@dataclass(frozen=True)
class Operation:
    """One row of the operation table: the call, its route key, and what it writes."""

    name: str
    route: str
    call: Call
    writes: str | None  # "event" or a workflow_writes op ("create", "update", "delete")

    @property
    def method(self) -> str:
        return self.route.split(" ")[0]


OPERATIONS: list[Operation] = [
    Operation("workflows.list", "GET /v1/workflows", _wf_list, None),
    Operation("workflows.create", "POST /v1/workflows", _wf_create, "create"),
    Operation("workflows.retrieve", "GET /v1/workflows/{id}", _wf_retrieve, None),
    Operation("workflows.update", "PATCH /v1/workflows/{id}", _wf_update, "update"),
    Operation("workflows.delete", "DELETE /v1/workflows/{id}", _wf_delete, "delete"),
    Operation("events.emit", "POST /v1/events", _ev_emit, "event"),
    Operation("events.list", "GET /v1/events", _ev_list, None),
    Operation("events.retrieve", "GET /v1/events/{id}", _ev_retrieve, None),
]
MODES = ("once", "always")


@dataclass(frozen=True)
class Outcome:
    """What a case must end in; ``error`` None means the call returns a result."""

    error: type[ventryx.VentryxError] | None
    attempts: int
    effects: int  # writes applied by the server (0 or 1: never more)
    replays: int  # idempotent replays the server served

    def describe(self) -> str:
        result = "ok" if self.error is None else self.error.__name__
        extra = f", {self.replays} replay{'s' * (self.replays != 1)}" if self.replays else ""
        effect = ", applied" if self.effects else ""
        return f"{result} after {self.attempts}{effect}{extra}"


def expected(fault: FaultCase, op: Operation, mode: str) -> Outcome:
    """The rule: what a fault applied ``once`` or ``always`` does to an operation."""
    write = op.writes is not None
    all_attempts = MAX_RETRIES + 1
    if fault.over_cap:
        # A Retry-After beyond the cap is never waited out: the caller gets it at once.
        return Outcome(fault.error, 1, 0, 0)
    if fault.fault.kind == "malformed_json":
        # A 2xx whose body is not JSON is not retried; a write was applied before the damage.
        return Outcome(fault.error, 1, int(write), 0)
    if fault.fault.kind == "delay" and write:
        # Writes carry an Idempotency-Key: the timed-out first attempt is still in flight on
        # the server, so every retry meets 409 idempotency_conflict until they run out; the
        # first attempt then completes, so the write is applied exactly once, after the call.
        return Outcome(ventryx.ConflictError, all_attempts, 1, 0)
    if mode == "once":
        # The retry after a damaged answer to a write is the idempotent replay of the first.
        replays = int(write and fault.after_commit)
        return Outcome(None, 2, int(write), replays)
    if fault.after_commit and write:
        # Applied once by the first attempt; every retry is a replay, damaged again.
        return Outcome(fault.error, all_attempts, 1, all_attempts - 1)
    return Outcome(fault.error, all_attempts, 0, 0)


def _effects(server: LocalServer, op: Operation) -> int:
    if op.writes is None:
        return len(server.ledger.events) + len(server.ledger.workflow_writes)
    if op.writes == "event":
        return len(server.ledger.events)
    return sum(1 for w in server.ledger.workflow_writes if w["op"] == op.writes)


async def _setup(client: Any, server: LocalServer, op: Operation, case: str) -> dict[str, str]:
    ctx = {"case": case}
    if op.route.endswith("{id}"):
        if op.route.startswith(("GET /v1/workflows", "PATCH", "DELETE")):
            created = await client.workflows.create(name="w", trigger={"event": "e"}, steps=[STEP])
            ctx["workflow_id"] = created.id
        else:
            ctx["event_id"] = (await client.events.emit(type="seed")).id
    return ctx


async def _settled(server: LocalServer, op: Operation, want: int, base: int) -> int:
    """The effect count once a write still held by the server (delay fault) has landed."""
    for _ in range(int((DELAY + 3.0) / 0.02)):
        if _effects(server, op) - base >= want:
            break
        await anyio.sleep(0.02)
    return _effects(server, op) - base


CASES = [
    pytest.param(fault, op, mode, id=f"{fault.name}-{op.name}-{mode}")
    for fault in FAULTS
    for op in OPERATIONS
    for mode in MODES
]


@pytest.mark.parametrize(("fault", "op", "mode"), CASES)
async def test_fault_matrix(
    make_client, server: LocalServer, fault: FaultCase, op: Operation, mode: str
) -> None:
    want = expected(fault, op, mode)
    timeout = TIMEOUT if fault.fault.kind == "delay" else SLACK_TIMEOUT
    client = make_client(max_retries=MAX_RETRIES, retry_policy=POLICY, timeout=timeout)
    with anyio.fail_after(30):
        ctx = await _setup(client, server, op, f"{fault.name}-{mode}")
        rule = (
            FaultRule(op.route, sequence=[fault.fault])
            if mode == "once"
            else FaultRule(op.route, fault=fault.fault)
        )
        server.configure(faults=[rule])
        attempts_before = server.ledger.attempts[op.route]
        effects_before = _effects(server, op)
        replays_before = server.ledger.replays

        if want.error is None:
            result = await op.call(client, ctx)
            assert result.raw_response is not None
            assert result.raw_response.attempts == want.attempts
        else:
            with pytest.raises(ventryx.VentryxError) as info:
                await op.call(client, ctx)
            assert type(info.value) is want.error, f"{type(info.value).__name__}: {info.value}"
            if fault.over_cap:
                assert isinstance(info.value, ventryx.RateLimitError)
                assert info.value.retry_after is not None
                assert info.value.retry_after > POLICY.max_retry_after

        assert server.ledger.attempts[op.route] - attempts_before == want.attempts
        server.release_delayed()  # a write the delay fault still holds lands now
        assert await _settled(server, op, want.effects, effects_before) == want.effects
        assert server.ledger.replays - replays_before == want.replays
        assert server.ledger.duplicates == 0
        if op.writes is not None:
            # Every attempt of one logical call carried the same Idempotency-Key.
            keys = {
                r.idempotency_key
                for r in server.ledger.requests[-want.attempts :]
                if r.method == op.method
            }
            assert len(keys) == 1
            assert None not in keys

        # The client is still usable once the fault is gone.
        server.configure(faults=[])
        assert (await client.events.list(per_page=1)).meta.per_page == 1


def test_the_matrix_covers_every_fault_kind_and_operation() -> None:
    from ventryx.testing._faults import FAULT_KINDS

    assert {f.fault.kind for f in FAULTS} == set(FAULT_KINDS)
    assert {f.fault.status for f in FAULTS if f.fault.kind == "status"} == {500, 502, 503, 504}
    retry_afters = {f.fault.retry_after for f in FAULTS if f.fault.kind == "rate_limited"}
    assert {"0", "0.02", PAST_DATE, None} <= retry_afters
    assert len(CASES) == len(FAULTS) * len(OPERATIONS) * len(MODES)
    outcomes = {expected(f, o, m).describe() for f in FAULTS for o in OPERATIONS for m in MODES}
    assert len(outcomes) > 5  # the rule distinguishes, it does not say "ok" everywhere
    assert render_table().count("\n") == 1 + len(FAULTS) * len(MODES)


def render_table() -> str:
    """The matrix as Markdown; the four reads and the four writes each share one outcome."""
    reads = [op for op in OPERATIONS if op.writes is None]
    writes = [op for op in OPERATIONS if op.writes is not None]
    lines = [
        "| fault | mode | reads: " + ", ".join(op.name for op in reads)
        + " | writes: " + ", ".join(op.name for op in writes) + " |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for fault in FAULTS:
        for mode in MODES:
            cells = []
            for group in (reads, writes):
                (outcome,) = {expected(fault, op, mode).describe() for op in group}
                cells.append(outcome)
            lines.append(f"| {fault.name} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_table())

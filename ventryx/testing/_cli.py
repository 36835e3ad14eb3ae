"""Command-line options of the local server, shared by ``python -m ventryx.testing`` and the
SDK CLI's ``serve`` subcommand."""

from __future__ import annotations

import argparse
from typing import Any

from ventryx._cli_options import add_valued
from ventryx.testing._config import DEFAULT_TEST_KEY, ServerConfig
from ventryx.testing._faults import FAULT_KINDS, Fault, FaultRule
from ventryx.testing._ratelimit import RETRY_AFTER_FORMS, SHAPES, RateLimit, Shape
from ventryx.testing._server import serve_forever

__all__ = ["add_server_arguments", "config_from_args", "parse_fault", "serve_forever"]

FAULT_HELP = (
    "inject a fault: ROUTE:KIND[=ARG][:PROBABILITY], repeatable. ROUTE is '*', 'METHOD /path' "
    "or '* /path' with route templates such as /v1/workflows/{id}. KIND is one of "
    f"{', '.join(FAULT_KINDS)}. ARG is the status for status (500, 502, 503, 504), the seconds "
    "for delay, the Retry-After value for rate_limited ('none' for no header). PROBABILITY "
    "defaults to 1. Examples: 'POST /v1/events:status=503:0.05', '*:reset_before:0.01', "
    "'GET /v1/workflows/{id}:delay=0.5', '*:rate_limited=1'."
)


def parse_fault(spec: str) -> FaultRule:
    """A ``FaultRule`` from ``ROUTE:KIND[=ARG][:PROBABILITY]``."""
    route, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"expected ROUTE:KIND[=ARG][:PROBABILITY], got {spec!r}")
    probability = 1.0
    head, colon, tail = rest.rpartition(":")
    if colon:
        try:
            probability = float(tail)
            rest = head
        except ValueError:
            pass  # the colon belongs to ARG (an HTTP date)
    kind, _, arg = rest.partition("=")
    kind = kind.strip()
    options: dict[str, Any] = {}
    try:
        if kind == "status" and arg:
            options["status"] = int(arg)
        elif kind == "delay":
            options["delay"] = float(arg or "1")
        elif kind == "rate_limited" and arg and arg.lower() != "none":
            options["retry_after"] = arg
        elif arg and kind not in ("status", "rate_limited"):
            raise ValueError(f"fault kind {kind!r} takes no argument")
        return FaultRule(route.strip(), fault=Fault(kind, **options), probability=probability)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"bad --fault {spec!r}: {exc}") from None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the server's options to ``parser``."""
    add_valued(parser, "--host", "127.0.0.1", "interface to bind")
    add_valued(parser, "--port", 8080, "port to bind, 0 for a free one")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"an accepted API key, repeatable (default: {DEFAULT_TEST_KEY})",
    )
    parser.add_argument(
        "--rate-limit", type=float, metavar="R", help="allow R requests per second (token bucket)"
    )
    add_valued(parser, "--burst", 1, "bucket capacity", metavar="B")
    retry_after = "how a 429 states the wait"
    add_valued(parser, "--retry-after", "fractional", retry_after, choices=RETRY_AFTER_FORMS)
    parser.add_argument(
        "--limiter",
        choices=SHAPES,
        help="the limiter's shape (default: token_bucket when --rate-limit is given)",
    )
    window = "window seconds of fixed_window/sliding_window: R*W requests a window"
    add_valued(parser, "--window", 1.0, window, metavar="W")
    in_service = "requests in service at once of the concurrency limiter"
    add_valued(parser, "--max-in-service", 1, in_service, metavar="N")
    sporadic = "the sporadic limiter's 429 probability, whatever the rate"
    add_valued(parser, "--sporadic", 0.0, sporadic, metavar="P")
    add_valued(parser, "--sporadic-wait", 0.05, "the wait a sporadic 429 names", metavar="S")
    latency = "seconds each admitted request spends in service"
    add_valued(parser, "--latency", 0.0, latency, metavar="S")
    parser.add_argument(
        "--no-rate-headers", action="store_true", help="send no X-RateLimit-* headers"
    )
    parser.add_argument(
        "--fault", action="append", dest="faults", type=parse_fault, metavar="SPEC", help=FAULT_HELP
    )
    add_valued(parser, "--seed", 0, "seed of probabilistic faults")
    add_valued(parser, "--max-body-bytes", 1_048_576, "largest accepted body")
    parser.add_argument(
        "--no-record", action="store_true", help="do not keep a log of every request"
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The ``ServerConfig`` the parsed options describe."""
    shape: Shape | None = args.limiter or ("token_bucket" if args.rate_limit is not None else None)
    rate_limit = None
    if shape is not None:
        try:
            rate_limit = RateLimit(
                args.rate_limit if args.rate_limit is not None else 1.0,
                args.burst,
                args.retry_after,
                shape=shape,
                window=args.window,
                max_in_service=args.max_in_service,
                probability=args.sporadic,
                sporadic_wait=args.sporadic_wait,
                latency=args.latency,
                rate_headers=not args.no_rate_headers,
                seed=args.seed if shape == "sporadic" else 0,
            )
        except ValueError as exc:
            raise SystemExit(f"bad limiter options: {exc}") from None
    return ServerConfig(
        api_keys=frozenset(args.api_keys or [DEFAULT_TEST_KEY]),
        max_body_bytes=args.max_body_bytes,
        rate_limit=rate_limit,
        faults=tuple(args.faults or ()),
        seed=args.seed,
        record_requests=not args.no_record,
    )

"""Configuration of the local server: one frozen value, changed with ``attrs.evolve``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from ventryx.testing._faults import FaultRule
from ventryx.testing._ratelimit import RateLimit

DEFAULT_TEST_KEY: str = "vx_test_local_key"


def _to_frozenset(keys: Iterable[str]) -> frozenset[str]:
    if isinstance(keys, str):
        raise TypeError("api_keys must be a collection of keys, not one string")
    return frozenset(keys)


def _to_rules(rules: Sequence[FaultRule]) -> tuple[FaultRule, ...]:
    return tuple(rules)


def _check_keys(_inst: object, _attr: object, keys: frozenset[str]) -> None:
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ValueError("api_keys must hold at least one non-empty string")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """How the local server behaves: accepted keys, limits, rate limiting and faults."""

    api_keys: frozenset[str] = attrs.field(
        default=frozenset({DEFAULT_TEST_KEY}), converter=_to_frozenset, validator=_check_keys
    )
    max_body_bytes: int = attrs.field(default=1_048_576, validator=attrs.validators.ge(0))
    rate_limit: RateLimit | None = None
    faults: Sequence[FaultRule] = attrs.field(default=(), converter=_to_rules)
    seed: int = 0
    record_requests: bool = True

    @property
    def default_key(self) -> str:
        """The key clients use by default: the built-in test key if accepted, else the first."""
        if DEFAULT_TEST_KEY in self.api_keys:
            return DEFAULT_TEST_KEY
        return min(self.api_keys)

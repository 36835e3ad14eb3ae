"""Emit 1,000 events concurrently with the async client, then print the summary."""

import asyncio

from ventryx import AsyncVentryx


def signups(count):
    # Any iterable (or async iterable) works; it is pulled lazily, so memory stays flat.
    # A "key" makes a re-run safe: the same key is applied only once.
    for n in range(count):
        yield {"type": "user.registered", "data": {"user_id": f"usr_{n}"}, "key": f"signup-{n}"}


async def main() -> None:
    async with AsyncVentryx() as client:
        summary = await client.events.emit_many(signups(1000), concurrency=16)
    print(
        f"delivered {summary.delivered} of {summary.pulled} "
        f"in {summary.elapsed:.1f}s, {summary.retries} retries"
    )
    for problem in summary.problems:  # everything not delivered, with its input index
        print(f"event {problem.index}: {problem.status}: {problem.error}")


asyncio.run(main())

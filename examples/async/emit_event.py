"""Emit a user.registered event with the async client."""

import asyncio

from ventryx import AsyncVentryx


async def main() -> None:
    async with AsyncVentryx() as client:
        event = await client.events.emit(
            type="user.registered",
            data={"user_id": "usr_12345", "email": "jane@example.com", "plan": "pro"},
        )
        print(event.id)


asyncio.run(main())

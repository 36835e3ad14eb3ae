"""Create the Examples page's "User onboarding" workflow with the async client."""

import asyncio

from ventryx import AsyncVentryx


async def main() -> None:
    async with AsyncVentryx() as client:
        workflow = await client.workflows.create(
            name="User onboarding",
            trigger={"event": "user.registered"},
            steps=[{"type": "send_notification", "channel": "email", "template": "welcome"}],
        )
        print("Created workflow:", workflow.id)


asyncio.run(main())

"""List workflows (the first page) with the async client."""

import asyncio

from ventryx import AsyncVentryx


async def main() -> None:
    # The key comes from VENTRYX_API_KEY, the URL from VENTRYX_BASE_URL (or the default).
    async with AsyncVentryx() as client:
        page = await client.workflows.list()
        for workflow in page.data:
            print(workflow.id, workflow.name)
        print(f"{len(page.data)} workflows on this page, {page.meta.total} in all")


asyncio.run(main())

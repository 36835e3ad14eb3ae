"""Pagination with the async client: one page with its meta, then every workflow."""

import asyncio

from ventryx import AsyncVentryx


async def main() -> None:
    async with AsyncVentryx() as client:
        # GET /workflows?page=2&per_page=50
        page = await client.workflows.list(page=2, per_page=50)
        meta = page.meta
        print(f"page {meta.page}, per_page {meta.per_page}, total {meta.total}: {len(page.data)}")

        # `async for` fetches the pages one by one, as it goes.
        count = 0
        async for _workflow in client.workflows.list(per_page=100):
            count += 1
        print(f"{count} workflows in all")


asyncio.run(main())

"""Error handling with the async client: the API's error code, machine-readable.

Rate limits (429 ``rate_limit_exceeded``) are already backed off and retried by the client,
honouring Retry-After; ``RateLimitError`` reaches you only when the retries are used up.
"""

import asyncio
import sys

from ventryx import APIConnectionError, APIStatusError, AsyncVentryx, RateLimitError


async def main() -> int:
    async with AsyncVentryx() as client:
        try:
            page = await client.workflows.list()
        except RateLimitError as exc:
            print(f"Rate limited; the server asks to wait {exc.retry_after} s", file=sys.stderr)
            return 1
        except APIStatusError as exc:
            print(f"API error [{exc.code}]: {exc.message} (request id {exc.request_id})")
            return 1
        except APIConnectionError as exc:
            print(f"Could not reach the API: {exc.message}")
            return 1
        print(f"{page.meta.total} workflows")
        return 0


sys.exit(asyncio.run(main()))

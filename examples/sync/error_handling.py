"""Error handling with the sync client: the API's error code, machine-readable.

Rate limits (429 ``rate_limit_exceeded``) are already backed off and retried by the client,
honouring Retry-After; ``RateLimitError`` reaches you only when the retries are used up.
"""

import sys

from ventryx_sync import APIConnectionError, APIStatusError, RateLimitError, Ventryx


def main() -> int:
    with Ventryx() as client:
        try:
            page = client.workflows.list()
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


sys.exit(main())

"""``python -m ventryx.testing``: run the local Ventryx server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ventryx.testing._cli import add_server_arguments, config_from_args, serve_forever


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, serve, and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ventryx.testing",
        description="Serve the Ventryx API in memory for offline tests and demos.",
    )
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        serve_forever(config, args.host, args.port)
    except OSError as exc:
        sys.stderr.write(f"cannot serve on {args.host}:{args.port}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m ventryx`` and the ``ventryx`` console script: the command-line tool."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from ventryx._cli import main as run  # noqa: PLC0415 - `import ventryx` must stay light

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())

"""An option with a default, for the ``ventryx`` command line and the local server's.

The default is written once: it gives the option its type and ends its help.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["add_valued"]


def add_valued(
    parser: argparse.ArgumentParser,
    flag: str,
    default: float | str,
    help: str,
    *,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
) -> None:
    """``flag`` takes one value of ``default``'s type (one of ``choices``, if given); its help
    ends with the default."""
    parser.add_argument(
        flag,
        type=type(default),
        default=default,
        metavar=metavar,
        choices=choices,
        help=f"{help} (default: %(default)s)",
    )

"""The ``ventryx`` command-line tool; ``ventryx --help`` lists the commands.

Roles: ``_app`` (the argument parser and the error boundary), ``_output`` (printing results
and errors), ``_progress`` (the live progress bar), ``_commands`` (one request each),
``_emit_file`` (bulk emission from a JSONL file), ``_demo`` (the guided tour).
Nothing here is imported by ``import ventryx``.
"""

from ventryx._cli._app import main

__all__ = ["main"]

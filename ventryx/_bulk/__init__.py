"""Concurrent bulk event emission: ``client.events.emit_many`` and its blocking twin.

Roles: ``_options`` (the keywords, checked), ``_input`` (item -> body and key), ``_gate`` (the
shared rate gate), ``_engine`` (the worker pool), ``_run`` (the input, transport, cancellation),
``_blocking`` (the portal for sync code), ``_results`` (what a run reports; the public names
are re-exported by ``ventryx``).
"""

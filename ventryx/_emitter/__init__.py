"""Background delivery: ``client.events.emitter(...)`` and its outbox (DESIGN.md section 7).

Roles: ``_store`` (memory and SQLite outboxes, leases, dead letters), ``_async`` (the async
emitter on the bulk engine), ``_sync`` (the blocking emitter: a delivery thread). Nothing is
imported here, so that the sync facade can name ``Emitter`` without loading the engine.
"""

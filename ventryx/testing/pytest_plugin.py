"""Pytest fixtures for tests of code that uses the Ventryx SDK: ``ventryx_server`` and
``ventryx_server_factory``.

Installing ventryx registers them already (through the top-level ``_ventryx_pytest`` module,
which imports only pytest until a fixture is used); this module is for naming them explicitly,
``pytest_plugins = ["ventryx.testing.pytest_plugin"]``.
"""

from _ventryx_pytest import ventryx_server, ventryx_server_factory

__all__ = ["ventryx_server", "ventryx_server_factory"]

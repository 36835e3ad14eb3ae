"""Benchmarks of the ventryx SDK: ``python -m benchmarks [--quick]`` (see README.md)."""

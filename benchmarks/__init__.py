"""Benchmarks of s2s_jax: one module per measurement, run as ``python -m benchmarks.NAME``."""

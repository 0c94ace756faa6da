"""Benchmarks and the independent baseline that benchmarks and tests compare leadflow with."""

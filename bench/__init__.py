"""Benchmarks (pytest-benchmark); not part of the installed package nor of the CI test suite."""

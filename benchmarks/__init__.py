"""Benchmark scripts; each prints the figures the README and benchmarks/README.md quote."""

"""Throughput, latency and memory of the pipeline against its ceilings: ``python -m benchmarks``."""

"""Pieces of the benchmark behind ``benchmarks/run.py``; not part of the product."""

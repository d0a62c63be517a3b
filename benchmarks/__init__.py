"""Benchmark scripts: each compares the pack with a baseline in the same run."""

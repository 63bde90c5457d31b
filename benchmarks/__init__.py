"""Benchmarks of the integration console (run them as scripts, e.g. benchmarks/ingest.py)."""

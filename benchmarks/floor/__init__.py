"""The floor of benchmarks/ingest.py: a minimal Django project that only stores raw JSON.

It runs under the same gunicorn configuration and on the same database as the console,
so its throughput is the most a Django view can take on this machine; the console's
throughput is reported as a fraction of it.
"""

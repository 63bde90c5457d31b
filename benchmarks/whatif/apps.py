import os

from django.apps import AppConfig


class WhatIfConfig(AppConfig):
    name = "benchmarks.whatif"
    label = "bench_whatif"

    def ready(self) -> None:
        from benchmarks.whatif import patches

        names = [n.strip() for n in os.environ.get("BENCH_WHATIF", "").split(",") if n.strip()]
        patches.apply(names)

"""What-if experiments: the console with monkeypatches that prototype suggested changes.

Never used by the console itself. ``benchmarks/ingest.py --whatif NAME[,NAME]`` and
``benchmarks/profile_batch.py --whatif ...`` run the console with the settings module
``benchmarks.whatif.settings``, which adds this app; its ``ready()`` applies the patches
named in ``BENCH_WHATIF``. Each patch stands for a change proposed in the benchmark
report, so its effect can be measured before anyone edits integrations/.
"""

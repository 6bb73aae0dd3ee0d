"""Benchmark of Modelship against a seed-style baseline and bare HTTP/gRPC ceilings (not a test).

Entry point: ``scripts/bench`` (``python -m bench.run``). See ``bench/README.md``.
"""

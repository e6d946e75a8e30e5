"""Integration tests. This directory is on ``sys.path`` for them (pytest puts a conftest's
directory there), so that every integration test — and ``benchmarks/faults.py`` — shares
``fault_lab``: the fault machinery, in one place."""

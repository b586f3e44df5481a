"""Benchmark and study scripts, run from the repository root as modules, e.g.
``python -m benchmarks.zero_shot --quick``, so they import each other as a package."""

"""Benchmarks of fedswarm: run each as ``python bench/<name>.py`` (see BENCHMARKS.md)."""

"""Benchmarks of ddfs against GNU ddrescue 1.27, run side by side (see docs/benchmarks.md)."""

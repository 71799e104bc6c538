"""cemkit benchmarks: each compares cemkit with a baseline in the same run, as a ratio."""

"""Benchmarks behind `cppn-video bench`: each measures its baseline in the same run as the fast path."""

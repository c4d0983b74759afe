"""Benchmarks: encode speed against the teacher and a static peer, and accuracy of embedding variants."""

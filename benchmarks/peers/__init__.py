"""The PyTorch reference of s2s_jax's model and searches, for the benchmarks."""

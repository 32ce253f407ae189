"""The experiments: the post's reproduction, the many-seed study and sweep,
their statistics, and the benchmark."""

"""Chainer's own machinery with schedules: iterators that resume them,
Trainer extensions, and the post's experiment as a Trainer."""

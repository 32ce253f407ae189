"""The core: the post's data, model, loss, Adam and the one training loop."""

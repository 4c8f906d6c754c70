"""Checkpoints: reading any format we know (bounded, weights only), writing atomically."""

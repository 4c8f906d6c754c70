"""Data: where images come from, how they are read, held, subset and batched."""

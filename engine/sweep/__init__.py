"""Sweeps: accuracy against pruning level, its answer, its files, sensitivity and recovery."""

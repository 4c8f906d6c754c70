"""Measuring a network: accuracy, intervals, parameters, MACs, latency, BN folding, fused convs."""

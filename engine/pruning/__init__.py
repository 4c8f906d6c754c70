"""Pruning: scores, nested masks, channel coupling, gradual schedules, slim networks."""

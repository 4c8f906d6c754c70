"""Models: the networks prunelab builds, by name."""

"""Export: a pruned level written as a smaller file (sparse, slim, ONNX)."""

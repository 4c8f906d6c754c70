"""Where a run executes: device, precision, and torchrun ranks."""

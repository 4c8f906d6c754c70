"""Training: the seed's loop, its recipes, checkpoints, resume, and masked fine-tuning."""

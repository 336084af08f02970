"""Training: rounds, checkpoints and evaluation runs."""

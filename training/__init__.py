"""The shared optimizer stack, training loop, logging and checkpoints."""

"""convnext family (being written)."""

"""vit family (being written)."""

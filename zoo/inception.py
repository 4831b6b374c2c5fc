"""inception family (being written)."""

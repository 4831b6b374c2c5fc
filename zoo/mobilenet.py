"""mobilenet family (being written)."""

"""Search spaces, one per file, found by name."""

"""exec stage (built in later issues)."""

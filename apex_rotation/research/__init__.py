"""research stage (built in later issues)."""

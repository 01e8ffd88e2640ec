"""signals stage (built in later issues)."""

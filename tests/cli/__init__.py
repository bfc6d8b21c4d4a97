"""The `mlstack` command line."""

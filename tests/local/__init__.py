"""Local mode: the ASL interpreter, the local handlers and `mlstack local run`."""

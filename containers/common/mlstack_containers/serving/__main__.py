"""``python -m mlstack_containers.serving`` — what the image's ``serve`` program runs."""

# First, before numpy (imported by the server) starts its threads: see reuse_freed_memory.
from mlstack_containers.serving.memory import reuse_freed_memory

reuse_freed_memory()

from mlstack_containers.serving.server import main  # noqa: E402

if __name__ == "__main__":
    main()

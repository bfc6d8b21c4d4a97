"""``python -m mlstack_containers.serving`` — what the image's ``serve`` program runs."""

from mlstack_containers.serving.server import main

if __name__ == "__main__":
    main()

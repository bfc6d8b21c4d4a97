"""``python -m mlstack.cli``: the same as the ``mlstack`` command."""

import sys

from mlstack.cli import main

sys.exit(main())

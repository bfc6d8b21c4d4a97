"""Where the runtime code that mlstack's constructs build assets from is found.

In a checkout: the repository's top-level ``containers/`` and ``lambda/``. In an installed wheel:
their copies under ``mlstack/_bundled/``, which ``setup.py`` puts there when it builds the wheel.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# Keep in step with setup.py (BUNDLED, TREES).
BUNDLED_DIR = _PACKAGE_DIR / "_bundled"
CHECKOUT_DIR = _PACKAGE_DIR.parent


def runtime_path(relative: str) -> Path:
    """The directory ``relative`` (``"containers"``, ``"lambda/seed"``, ...): the wheel's copy when
    this package was installed from a wheel, else the checkout's."""
    bundled = BUNDLED_DIR / relative
    return bundled if bundled.is_dir() else CHECKOUT_DIR / relative

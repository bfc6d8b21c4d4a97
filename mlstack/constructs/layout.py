"""Where each kind of object lives inside the data bucket."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]*/$")


@dataclass(frozen=True)
class BucketLayout:
    """Key prefixes of the data bucket, each ending in ``/``.

    ``datasets`` holds the seeded train/test CSVs, ``models`` the training jobs' model artifacts,
    ``transform_output`` the batch transform results.
    """

    datasets: str = "datasets/"
    models: str = "models/"
    transform_output: str = "transform-output/"

    def __post_init__(self) -> None:
        for name in ("datasets", "models", "transform_output"):
            value = getattr(self, name)
            if not _PREFIX.fullmatch(value):
                raise ValueError(
                    f"BucketLayout.{name}={value!r}: expected lower-case letters, digits and "
                    "dashes ending in '/', such as 'datasets/'"
                )
        if len({self.datasets, self.models, self.transform_output}) != 3:
            raise ValueError(f"BucketLayout prefixes must be distinct, got {self!r}")

"""Where each kind of object lives inside the data bucket."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]*/$")


@dataclass(frozen=True)
class BucketLayout:
    """Key prefixes of the data bucket, each ending in ``/``.

    ``datasets`` holds the seeded train/validation/test CSVs, ``models`` the training jobs' model
    artifacts, ``transform_output`` the batch transform results, ``data_capture`` what endpoints
    capture of their requests and responses, ``async_inference`` the results (``output/``) and
    failures (``failures/``) of asynchronous endpoints, ``releases`` the model artifacts released
    for the Serving endpoint: no role of the workflow may write there, so no job can replace what
    the Serving endpoint serves; ``checkpoints`` the training checkpoints of spot training
    (``checkpoints/<run_id>/``), from which an interrupted job resumes; ``evaluations`` the
    evaluation job's report (``evaluations/<run_id>/evaluation.json``); ``baselines`` the
    data-quality baselines of the training data (``baselines/<run_id>/statistics.json`` and
    ``constraints.json``, and the newest run's again under ``baselines/latest/``), which Model
    Monitor compares the endpoint's captured requests with; ``imports`` the tables users bring
    (a dataset source's key prefix; ``mlstack local run --data`` copies a file there).
    """

    datasets: str = "datasets/"
    models: str = "models/"
    transform_output: str = "transform-output/"
    data_capture: str = "data-capture/"
    async_inference: str = "async-inference/"
    releases: str = "releases/"
    checkpoints: str = "checkpoints/"
    evaluations: str = "evaluations/"
    baselines: str = "baselines/"
    imports: str = "imports/"

    def __post_init__(self) -> None:
        names = [f.name for f in fields(self)]
        for name in names:
            value = getattr(self, name)
            if not _PREFIX.fullmatch(value):
                raise ValueError(
                    f"BucketLayout.{name}={value!r}: expected lower-case letters, digits and "
                    "dashes ending in '/', such as 'datasets/'"
                )
        if len({getattr(self, n) for n in names}) != len(names):
            raise ValueError(f"BucketLayout prefixes must be distinct, got {self!r}")

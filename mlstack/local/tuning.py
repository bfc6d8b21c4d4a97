"""Hyperparameter search for local tuning jobs: SageMaker's ``ParameterRanges`` read into a unit
cube, and the two strategies a tuning job may name.

- ``Random``: each hyperparameter drawn independently over its range, on its scale (``Linear``,
  ``Logarithmic``, ``ReverseLogarithmic``; ``Auto`` is linear), as SageMaker's random search does.
- ``Bayesian``: SageMaker's own optimizer is not published, so locally it is a small Gaussian
  process (RBF kernel, length scale 0.25 on the unit-scaled ranges, observations standardised)
  choosing by expected improvement among 512 random candidates; jobs still running count as
  observed at the current mean ("constant liar"), so parallel jobs do not all pick one point.
  The first ``max(3, MaxParallelTrainingJobs)`` suggestions are random, as there is nothing to
  model yet.

Draws come from a generator seeded with the tuning job's name, so one run repeats itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CANDIDATES = 512
LENGTH_SCALE = 0.25


class RangeError(ValueError):
    """A ``ParameterRanges`` entry SageMaker would refuse."""


@dataclass(frozen=True)
class Range:
    name: str
    kind: str  # "Integer", "Continuous" or "Categorical"
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    def value(self, u: float) -> str:
        """The hyperparameter's string value at ``u`` in [0, 1] of its range."""
        u = min(max(u, 0.0), 1.0)
        if self.kind == "Categorical":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.scaling == "Logarithmic":
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        elif self.scaling == "ReverseLogarithmic":
            a, b = math.log(1 - self.low), math.log(1 - self.high)
            x = 1 - math.exp(a + u * (b - a))
        else:
            x = self.low + u * (self.high - self.low)
        if self.kind == "Integer":
            return str(min(max(round(x), int(self.low)), int(self.high)))
        return repr(min(max(x, self.low), self.high))

    def unit(self, text: str) -> float:
        """The inverse of :meth:`value`."""
        if self.kind == "Categorical":
            return (self.values.index(text) + 0.5) / len(self.values)
        x = float(text)
        if self.high == self.low:
            return 0.5
        if self.scaling == "Logarithmic":
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        if self.scaling == "ReverseLogarithmic":
            a, b = math.log(1 - self.low), math.log(1 - self.high)
            return (math.log(1 - x) - a) / (b - a)
        return (x - self.low) / (self.high - self.low)


def parse_ranges(ranges: Mapping[str, Any]) -> list[Range]:
    """SageMaker's ``ParameterRanges`` (Integer, Continuous, Categorical), checked as the API
    checks them (CreateHyperParameterTuningJob, ``ParameterRange``)."""
    out: list[Range] = []
    for entry in ranges.get("CategoricalParameterRanges", []) or []:
        values = tuple(str(v) for v in entry.get("Values", []))
        if not values:
            raise RangeError(f"CategoricalParameterRanges {entry.get('Name')!r}: no Values")
        out.append(Range(str(entry["Name"]), "Categorical", values=values))
    for kind in ("Integer", "Continuous"):
        for entry in ranges.get(f"{kind}ParameterRanges", []) or []:
            name = str(entry.get("Name"))
            try:
                low, high = float(entry["MinValue"]), float(entry["MaxValue"])
            except (KeyError, TypeError, ValueError):
                raise RangeError(
                    f"{kind}ParameterRanges {name!r}: MinValue and MaxValue must be numbers"
                ) from None
            scaling = str(entry.get("ScalingType", "Auto"))
            if scaling not in ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic"):
                raise RangeError(f"{kind}ParameterRanges {name!r}: ScalingType {scaling!r}")
            if low > high:
                raise RangeError(f"{kind}ParameterRanges {name!r}: MinValue > MaxValue")
            if scaling == "Logarithmic" and low <= 0:
                raise RangeError(
                    f"{kind}ParameterRanges {name!r}: Logarithmic scaling needs MinValue > 0"
                )
            if scaling == "ReverseLogarithmic" and (kind == "Integer" or low < 0 or high >= 1):
                raise RangeError(
                    f"{kind}ParameterRanges {name!r}: ReverseLogarithmic scaling is for "
                    "continuous ranges within [0, 1)"
                )
            out.append(Range(name, kind, low, high, scaling))
    if not out:
        raise RangeError("ParameterRanges has no range to tune")
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise RangeError(f"ParameterRanges names a hyperparameter twice: {sorted(names)}")
    return out


class Search:
    """Suggests the next job's tuned hyperparameters from the finished ones."""

    def __init__(
        self, strategy: str, ranges: Sequence[Range], *, seed: str, parallel: int = 1
    ) -> None:
        if strategy not in ("Random", "Bayesian"):
            raise RangeError(
                f"Strategy {strategy!r} does not run locally (Random or Bayesian; Hyperband "
                "and Grid are AWS-only here)"
            )
        self.strategy = strategy
        self.ranges = list(ranges)
        self.rng = random.Random(seed)
        self.warmup = max(3, parallel)

    def random_point(self) -> list[float]:
        return [self.rng.random() for _ in self.ranges]

    def suggest(
        self,
        observed: Sequence[tuple[Mapping[str, str], float]],
        pending: Sequence[Mapping[str, str]],
    ) -> dict[str, str]:
        """``observed``: (tuned hyperparameters, objective to minimise) of finished jobs;
        ``pending``: those of running jobs."""
        if self.strategy == "Random" or len(observed) < self.warmup:
            point = self.random_point()
        else:
            point = self._expected_improvement(observed, pending)
        return {r.name: r.value(u) for r, u in zip(self.ranges, point, strict=True)}

    def _encode(self, values: Mapping[str, str]) -> list[float]:
        return [r.unit(values[r.name]) for r in self.ranges]

    def _expected_improvement(
        self,
        observed: Sequence[tuple[Mapping[str, str], float]],
        pending: Sequence[Mapping[str, str]],
    ) -> list[float]:
        import numpy as np  # local mode runs the training image's code, which needs numpy

        x = np.array([self._encode(v) for v, _ in observed])
        y = np.array([objective for _, objective in observed], dtype=float)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        z = (y - mean) / std
        if pending:  # constant liar: a running job counts as the best so far
            x = np.vstack([x, np.array([self._encode(v) for v in pending])])
            z = np.concatenate([z, np.full(len(pending), z.min())])

        def kernel(a: Any, b: Any) -> Any:
            d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
            return np.exp(-0.5 * d2 / LENGTH_SCALE**2)

        k = kernel(x, x) + 1e-6 * np.eye(len(x))
        chol = np.linalg.cholesky(k)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
        candidates = np.array([self.random_point() for _ in range(CANDIDATES)])
        ks = kernel(candidates, x)
        mu = ks @ alpha
        v = np.linalg.solve(chol, ks.T)
        sigma = np.sqrt(np.maximum(1.0 - (v**2).sum(axis=0), 1e-12))
        best = z.min()
        gap = (best - mu) / sigma
        cdf = 0.5 * (1 + np.vectorize(math.erf)(gap / math.sqrt(2)))
        pdf = np.exp(-0.5 * gap**2) / math.sqrt(2 * math.pi)
        improvement = (best - mu) * cdf + sigma * pdf
        return [float(u) for u in candidates[int(np.argmax(improvement))]]

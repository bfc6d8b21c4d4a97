"""Per-feature drift of the captured values from the training baseline.

Each feature gets two figures, with scipy (already in the training image, no new weight):

* the population stability index (PSI) over the baseline's bins (numeric: the training deciles;
  categorical: the categories) plus a bin for missing values:
  ``sum((current - baseline) * ln(current / baseline))``, each share floored at
  :data:`SHARE_FLOOR` so an empty bin does not make it infinite (Evidently floors at the same
  0.0001). 0.1 is commonly read as "some shift", 0.2 as "significant";
* a two-sample test: Kolmogorov-Smirnov (``scipy.stats.ks_2samp``) of the present values
  against the baseline's order-statistics sample for a numeric feature, chi-squared
  (``scipy.stats.chi2_contingency``) of the category counts (missing included) for a
  categorical one.

A feature *drifts* when its PSI is above ``psi_threshold`` **and** the test's p-value is below
``p_value``: PSI says the shift is large, the test that it is not chance. Requiring both keeps
a million-record window (where the test finds any difference significant) and a small window
(where PSI is noisy) from alarming on an unshifted sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlstack_containers.feature_baseline import FeatureProfile

SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    type: str
    psi: float
    test: str  # "ks" | "chi2"
    statistic: float | None
    p_value: float | None
    drifted: bool
    present: int
    missing_share: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "psi": self.psi,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "drifted": self.drifted,
            "present": self.present,
            "missing_share": self.missing_share,
        }


def psi(baseline: np.ndarray, current: np.ndarray) -> float:
    """PSI of two share vectors over the same bins."""
    b = np.maximum(np.asarray(baseline, dtype=np.float64), SHARE_FLOOR)
    c = np.maximum(np.asarray(current, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((c - b) * np.log(c / b)))


def _with_missing(shares: np.ndarray, missing_share: float) -> np.ndarray:
    return np.append(np.asarray(shares, dtype=np.float64) * (1 - missing_share), missing_share)


def numeric_drift(
    profile: FeatureProfile, values: np.ndarray, psi_threshold: float, p_value: float
) -> FeatureDrift:
    present = values[~np.isnan(values)]
    missing_share = 1 - len(present) / len(values) if len(values) else 0.0
    if profile.shares:
        base = np.asarray(profile.shares, dtype=np.float64)
        bins = profile.bin_counts(present) / len(present) if len(present) else np.zeros(len(base))
    else:  # the training column had no value: one bin for every present value
        base, bins = np.zeros(1), np.ones(1) if len(present) else np.zeros(1)
    index = psi(_with_missing(base, profile.missing_share), _with_missing(bins, missing_share))
    statistic = probability = None
    if len(present) and profile.sample:
        result = stats.ks_2samp(np.asarray(profile.sample), present)
        statistic, probability = float(result.statistic), float(result.pvalue)
    return _drift(
        profile,
        "ks",
        index,
        statistic,
        probability,
        len(present),
        missing_share,
        psi_threshold,
        p_value,
    )


def categorical_drift(
    profile: FeatureProfile,
    codes: np.ndarray,
    baseline_rows: int,
    psi_threshold: float,
    p_value: float,
) -> FeatureDrift:
    """``codes``: category indices (NaN: missing or not a known category, as serving reads)."""
    names = list(profile.categories)
    present = codes[~np.isnan(codes)].astype(np.int64)
    missing = len(codes) - len(present)
    current_counts = np.append(np.bincount(present, minlength=len(names))[: len(names)], missing)
    total = len(codes)
    missing_share = missing / total if total else 0.0
    base_shares = _with_missing(
        np.asarray(list(profile.categories.values())), profile.missing_share
    )
    current_shares = current_counts / total if total else np.zeros(len(names) + 1)
    index = psi(base_shares, current_shares)
    statistic = probability = None
    base_counts = base_shares * baseline_rows
    table = np.vstack([base_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if total and table.shape[1] > 1:
        result = stats.chi2_contingency(table, correction=False)
        statistic, probability = float(result.statistic), float(result.pvalue)
    elif total:
        statistic, probability = 0.0, 1.0  # one category on both sides: nothing to compare
    return _drift(
        profile,
        "chi2",
        index,
        statistic,
        probability,
        len(present),
        missing_share,
        psi_threshold,
        p_value,
    )


def _drift(
    profile: FeatureProfile,
    test: str,
    index: float,
    statistic: float | None,
    probability: float | None,
    present: int,
    missing_share: float,
    psi_threshold: float,
    p_value: float,
) -> FeatureDrift:
    # No test (no present value at all): the PSI over the missing bin decides alone.
    significant = probability is None or (math.isfinite(probability) and probability < p_value)
    return FeatureDrift(
        profile.name,
        profile.type,
        index,
        test,
        statistic,
        probability,
        index > psi_threshold and significant,
        present,
        missing_share,
    )

"""Statistics over seeds: the spread of a metric, and whether a paired difference is real.

Every training configuration is trained once per seed (docs/method.md, "Statistics over
seeds"). A metric is reported as the mean over seeds with the sample standard deviation
(``ddof=1``). Two configurations are compared seed by seed: the differences ``d_s = a_s -
b_s`` of runs with the same seed are paired, and the difference counts as real only when the
two-sided 95 % paired t-interval of their mean, ``mean(d) +- t(0.975, n - 1) * sd(d) /
sqrt(n)``, excludes zero. With one seed there is no spread and no claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: how a spread over seeds is shown, as the main table's caption states it
SPREAD = ("each cell is the mean ± the sample standard deviation over the seeds the seeds "
          "column counts; with one seed, the mean alone")
#: the decision rule, as the ablation table's caption states it
RULE = ("± is the sample standard deviation over seeds; a difference (Δ) pairs runs with the "
        "same seed and counts as real only when the two-sided 95 % paired t-interval of its "
        "mean (t quantile with n - 1 degrees of freedom) excludes 0; cells marked (≈ 0) are "
        "not distinguishable from zero; with one seed no claim is made")
DIFFERS = "differs from zero"
NOT_DISTINGUISHABLE = "not distinguishable from zero"
NO_CLAIM = "1 seed: no claim"
NO_PAIR = "no common seed"


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (NaN below two values) and count of the finite
    values; NaN mean when there is none."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if n > 1 else math.nan, n


@dataclass(frozen=True)
class PairedDifference:
    """Mean of paired differences ``a - b`` with its spread and 95 % t-interval."""

    mean: float
    std: float            #: sample standard deviation of the differences
    n: int                #: number of pairs (seeds in common)
    low: float            #: lower end of the two-sided t-interval (NaN below two pairs)
    high: float

    @property
    def claim(self) -> str:
        if self.n == 0:
            return NO_PAIR
        if self.n == 1:
            return NO_CLAIM
        return NOT_DISTINGUISHABLE if self.low <= 0 <= self.high else DIFFERS

    @property
    def distinguishable(self) -> bool:
        return self.claim == DIFFERS


def paired_difference(a: Sequence[float], b: Sequence[float],
                      confidence: float = CONFIDENCE) -> PairedDifference:
    """The paired difference of ``a`` and ``b`` (same length, pair k = seed k)."""
    if len(a) != len(b):
        raise ValueError(f"paired values of different lengths: {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, sd, n = mean_std(d)
    if n < 2:
        return PairedDifference(mean, sd, n, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(mean, sd, n, mean - half, mean + half)


def _number(value: float, digits: int, sign: bool = False) -> str:
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def format_mean_std(mean: float, std: float, digits: int = 3, signed: bool = False) -> str:
    """``0.512 ± 0.011`` (``+0.042 ± 0.020`` when ``signed``); the mean alone when there is no
    spread (one seed); empty for NaN."""
    if mean is None or not math.isfinite(mean):
        return ""
    text = _number(mean, digits, signed)
    if std is None or not math.isfinite(std):
        return text
    return f"{text} ± {_number(std, digits)}"


def format_difference(diff: PairedDifference, digits: int = 3) -> str:
    """``+0.042 ± 0.020``, with ``(≈ 0)`` when not distinguishable from zero and
    ``(1 seed: no claim)`` with one pair."""
    if diff.n == 0:
        return ""
    text = format_mean_std(diff.mean, diff.std, digits, signed=True)
    if diff.claim == NOT_DISTINGUISHABLE:
        return f"{text} (≈ 0)"
    if diff.claim == NO_CLAIM:
        return f"{text} ({NO_CLAIM})"
    return text

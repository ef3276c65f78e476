"""Statistics over seeds: mean, std, a 95 % confidence interval, and which losses are
statistically indistinguishable from the best.

Confidence interval: Student t over the n seeds, ``mean ± t_{0.975, n-1} · std / sqrt(n)`` with
the sample std (ddof = 1); none for a single seed.

Indistinguishable-from-best rule (after Musgrave et al., "A Metric Learning Reality Check",
ECCV 2020, who report confidence intervals over runs): the best loss is the one with the highest
mean. Another loss is *indistinguishable* from it when a two-sided paired t-test over the seeds
both ran (``scipy.stats.ttest_rel``) gives p >= 0.05; with fewer than 2 matched seeds (or
zero variance of the differences, where the test is undefined) the rule falls back to overlap of
the two 95 % confidence intervals (a single value is its own interval). The best loss is
always marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds, sample std (None for one value) and the 95 % Student-t interval."""

    mean: float
    std: float | None
    ci_low: float
    ci_high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, std (ddof=1) and the Student-t confidence interval of ``values`` (one per seed)."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("estimate needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, None, mean, mean, 1)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1)) * std / math.sqrt(data.size)
    return Estimate(mean, std, mean - half, mean + half, int(data.size))


def indistinguishable_from_best(
    per_loss: Mapping[str, Mapping[int, float]], alpha: float = ALPHA,
) -> dict[str, bool]:
    """For each loss (values keyed by seed; higher is better), whether it is statistically
    indistinguishable from the loss with the highest mean (the rule in the module docstring)."""
    means = {loss: float(np.mean(list(values.values()))) for loss, values in per_loss.items() if values}
    if not means:
        return {}
    best = max(means, key=means.__getitem__)
    marks = {}
    for loss in per_loss:
        if loss not in means:
            marks[loss] = False
        elif loss == best:
            marks[loss] = True
        else:
            marks[loss] = _same(per_loss[best], per_loss[loss], alpha)
    return marks


def _same(best: Mapping[int, float], other: Mapping[int, float], alpha: float) -> bool:
    seeds = sorted(set(best) & set(other))
    if len(seeds) >= 2:
        a = np.array([best[s] for s in seeds], dtype=float)
        b = np.array([other[s] for s in seeds], dtype=float)
        if np.ptp(a - b) > 0:
            return bool(stats.ttest_rel(a, b).pvalue >= alpha)
    x, y = estimate(list(best.values())), estimate(list(other.values()))
    return x.ci_low <= y.ci_high and y.ci_low <= x.ci_high

"""Statistics over seeds: mean, std, a 95 % confidence interval, and which losses are
statistically indistinguishable from the best.

Confidence interval: Student t over the n seeds, ``mean ± t_{0.975, n-1} · std / sqrt(n)`` with
the sample std (ddof = 1); none for a single seed. The t interval ignores that a metric lives in
[0, 1]: given ``bounds``, an interval that passes one is clipped to it and flagged
(``Estimate.clipped``), so the report can mark it rather than print "101.3".

Indistinguishable-from-best rule (after Musgrave et al., "A Metric Learning Reality Check",
ECCV 2020, who report confidence intervals over runs): the best loss is the one with the highest
mean. Each other loss is compared with it by a two-sided paired t-test over the seeds both ran
(``scipy.stats.ttest_rel``); the m - 1 p-values (several losses against one best) are adjusted
by Holm's step-down correction (Holm 1979, which controls the family-wise error rate at
``alpha``), and a loss is *indistinguishable* when its adjusted p >= ``alpha``. Differences that
are the same on every seed leave the test undefined (zero variance): a constant nonzero gap
counts as distinguishable, no gap at all as indistinguishable. With fewer than 2 matched seeds
there is no test (``indistinguishable`` is None): one seed says nothing about seed variance.
The best loss is marked only when at least one other loss was tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
TEST = "two-sided paired t-test over matched seeds"
CORRECTION = "Holm"
MIN_SEEDS = 2  # matched seeds a test needs


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds, sample std (None for one value) and the 95 % Student-t interval."""

    mean: float
    std: float | None
    ci_low: float
    ci_high: float
    n: int
    clipped: bool = False  # the Student-t interval passed a bound and was clipped to it

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def estimate(values: Sequence[float], confidence: float = CONFIDENCE,
             bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean, std (ddof=1) and the Student-t confidence interval of ``values`` (one per seed);
    with ``bounds`` (low, high) the interval is clipped to them (``clipped`` says it was)."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("estimate needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, None, mean, mean, 1)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1)) * std / math.sqrt(data.size)
    low, high = mean - half, mean + half
    if bounds is None or (bounds[0] <= low and high <= bounds[1]):
        return Estimate(mean, std, low, high, int(data.size))
    return Estimate(mean, std, max(low, float(bounds[0])), min(high, float(bounds[1])), int(data.size),
                    clipped=True)


@dataclass(frozen=True)
class Comparison:
    """One loss against the best: the paired test's raw and Holm-adjusted p-values (None when
    untested) and the verdict (None: fewer than MIN_SEEDS matched seeds, no test)."""

    loss: str
    is_best: bool
    seeds: int  # matched seeds with the best
    p_value: float | None = None
    p_adjusted: float | None = None
    indistinguishable: bool | None = None


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order:
    ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`` over the ascending p_(1..m)."""
    m = len(p_values)
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare_to_best(per_loss: Mapping[str, Mapping[int, float]],
                    alpha: float = ALPHA) -> dict[str, Comparison]:
    """Each loss (values keyed by seed; higher is better) against the loss of highest mean:
    paired t-tests, Holm-adjusted (the rule in the module docstring)."""
    means = {loss: float(np.mean(list(values.values()))) for loss, values in per_loss.items() if values}
    if not means:
        return {}
    best = max(means, key=means.__getitem__)
    tested: dict[str, tuple[int, float]] = {}
    result = {}
    for loss in per_loss:
        seeds = sorted(set(per_loss[best]) & set(per_loss[loss]))
        if loss != best and loss in means and len(seeds) >= MIN_SEEDS:
            tested[loss] = (len(seeds), _paired_p(per_loss[best], per_loss[loss], seeds))
        else:
            result[loss] = Comparison(loss, loss == best, len(seeds))
    for (loss, (seeds, p)), p_adj in zip(tested.items(), holm([p for _, p in tested.values()])):
        result[loss] = Comparison(loss, False, seeds, p, p_adj, p_adj >= alpha)
    return {loss: result[loss] for loss in per_loss}


def indistinguishable_from_best(
    per_loss: Mapping[str, Mapping[int, float]], alpha: float = ALPHA,
) -> dict[str, bool | None]:
    """For each loss, whether it is statistically indistinguishable from the best (None: not
    tested); the best is True when anything was tested against it, else None."""
    comparisons = compare_to_best(per_loss, alpha)
    any_tested = any(c.indistinguishable is not None for c in comparisons.values())
    return {loss: (any_tested or None) if c.is_best else c.indistinguishable
            for loss, c in comparisons.items()}


def _paired_p(best: Mapping[int, float], other: Mapping[int, float], seeds: Sequence[int]) -> float:
    a = np.array([best[s] for s in seeds], dtype=float)
    b = np.array([other[s] for s in seeds], dtype=float)
    if np.ptp(a - b) == 0:  # the t statistic is undefined: a constant gap is certain
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_rel(a, b).pvalue)

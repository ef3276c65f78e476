"""losszoo.evaluation.stats against scipy.stats on fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losszoo.evaluation.stats import estimate, indistinguishable_from_best


def test_estimate_matches_scipy_t_interval():
    values = [0.61, 0.64, 0.59, 0.66, 0.62]
    est = estimate(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert est.n == 5
    assert est.mean == pytest.approx(np.mean(values), abs=1e-12)
    assert est.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_estimate_two_values_by_hand():
    # n = 2: t_{0.975, 1} = 12.7062..., std = |a - b| / sqrt(2), half width = t * std / sqrt(2)
    est = estimate([1.0, 3.0])
    assert est.std == pytest.approx(math.sqrt(2))
    assert est.half_width == pytest.approx(12.706204736 * 1.0, rel=1e-8)


def test_single_value_has_no_std():
    est = estimate([0.5])
    assert est.std is None and est.ci_low == est.ci_high == 0.5 and est.n == 1
    with pytest.raises(ValueError):
        estimate([])


def test_paired_rule_follows_ttest_rel():
    best = {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.83}
    close = {0: 0.79, 1: 0.83, 2: 0.80, 3: 0.82}   # differences +-: p large
    worse = {0: 0.70, 1: 0.71, 2: 0.715, 3: 0.72}  # consistently 0.1 lower: p tiny
    marks = indistinguishable_from_best({"a": best, "b": close, "c": worse})
    p_close = stats.ttest_rel(list(best.values()), list(close.values())).pvalue
    p_worse = stats.ttest_rel(list(best.values()), list(worse.values())).pvalue
    assert p_close >= 0.05 > p_worse
    assert marks == {"a": True, "b": True, "c": False}


def test_pairing_uses_matched_seeds_only_and_falls_back_to_ci_overlap():
    best = {0: 0.9, 1: 0.91}
    other_one_seed = {5: 0.3}  # no matched seed: CI overlap; a point far outside best's CI
    near_point = {7: 0.905}   # inside best's CI
    marks = indistinguishable_from_best({"best": best, "far": other_one_seed, "near": near_point})
    assert marks == {"best": True, "far": False, "near": True}


def test_the_mark_pairs_by_seed_a_shared_seed_effect_is_not_noise():
    """Seeds move both losses together (same init, same batches); the other loss is below the
    best at every seed by about 0.01. Paired (scipy.stats.ttest_rel): p tiny, not marked. An
    unpaired test (ttest_ind) sees the seed-to-seed spread as noise and would mark it."""
    best = {0: 0.70, 1: 0.80, 2: 0.90, 3: 0.75}
    other = {0: 0.690, 1: 0.789, 2: 0.891, 3: 0.739}
    a, b = list(best.values()), list(other.values())
    assert stats.ttest_rel(a, b).pvalue < 0.05 <= stats.ttest_ind(a, b).pvalue
    assert indistinguishable_from_best({"best": best, "other": other}) == {"best": True, "other": False}

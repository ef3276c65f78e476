"""losszoo.evaluation.stats against scipy.stats on fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losszoo.evaluation.stats import compare_to_best, estimate, holm, indistinguishable_from_best


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


def test_interval_past_a_bound_is_clipped_and_flagged():
    values = [0.97, 0.99, 1.0]
    free = estimate(values)
    assert free.ci_high > 1 and not free.clipped
    bounded = estimate(values, bounds=(0.0, 1.0))
    assert bounded.clipped and bounded.ci_high == 1.0 and bounded.ci_low == free.ci_low
    assert not estimate([0.5, 0.6, 0.55], bounds=(0.0, 1.0)).clipped


def test_holm_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to the running 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_paired_rule_follows_ttest_rel_with_holm():
    best = {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.83}
    close = {0: 0.79, 1: 0.83, 2: 0.80, 3: 0.82}   # differences +-: p large
    worse = {0: 0.70, 1: 0.71, 2: 0.715, 3: 0.72}  # consistently 0.1 lower: p tiny
    marginal = {0: 0.797, 1: 0.809, 2: 0.806, 3: 0.820}  # 0.025 < p < 0.05: only Holm keeps it
    p = {name: stats.ttest_rel(list(best.values()), list(v.values())).pvalue
         for name, v in (("b", close), ("c", worse), ("d", marginal))}
    assert p["b"] >= 0.05 > p["d"] > 0.05 / 2 > p["c"]
    comparisons = compare_to_best({"a": best, "b": close, "c": worse, "d": marginal})
    assert {k: c.p_value for k, c in comparisons.items() if k != "a"} == pytest.approx(p)
    assert comparisons["d"].p_adjusted == pytest.approx(max(2 * p["d"], 3 * p["c"]))  # Holm, by hand
    marks = indistinguishable_from_best({"a": best, "b": close, "c": worse, "d": marginal})
    assert marks == {"a": True, "b": True, "c": False, "d": True}


def test_fewer_than_two_matched_seeds_is_not_tested():
    best = {0: 0.9, 1: 0.91}
    marks = indistinguishable_from_best({"best": best, "one": {5: 0.3}, "other": {0: 0.905}})
    assert marks == {"best": None, "one": None, "other": None}  # nothing tested: no mark at all
    assert indistinguishable_from_best({"a": {0: 0.8}, "b": {0: 0.7}}) == {"a": None, "b": None}
    marks = indistinguishable_from_best({"best": best, "one": {5: 0.3}, "two": {0: 0.5, 1: 0.52}})
    assert marks == {"best": True, "one": None, "two": False}


def test_a_constant_gap_is_distinguishable_and_no_gap_is_not():
    best = {0: 0.8, 1: 0.9, 2: 0.7}
    gap = {seed: value - 0.1 for seed, value in best.items()}
    comparisons = compare_to_best({"best": best, "gap": gap, "same": dict(best)})
    assert comparisons["gap"].indistinguishable is False and comparisons["same"].indistinguishable is True


def test_the_mark_pairs_by_seed_a_shared_seed_effect_is_not_noise():
    """Seeds move both losses together (same init, same batches); the other loss is below the
    best at every seed by about 0.01. Paired (scipy.stats.ttest_rel): p tiny, not marked. An
    unpaired test (ttest_ind) sees the seed-to-seed spread as noise and would mark it."""
    best = {0: 0.70, 1: 0.80, 2: 0.90, 3: 0.75}
    other = {0: 0.690, 1: 0.789, 2: 0.891, 3: 0.739}
    a, b = list(best.values()), list(other.values())
    assert stats.ttest_rel(a, b).pvalue < 0.05 <= stats.ttest_ind(a, b).pvalue
    assert indistinguishable_from_best({"best": best, "other": other}) == {"best": True, "other": False}

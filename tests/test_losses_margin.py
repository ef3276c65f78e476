"""Margin based loss with distance weighted sampling (Wu et al. 2017).

The loss is factored into the sampler (triplet indices) and the margin term over given
triplets. The term is checked against loops over the equation and against
pytorch-metric-learning's MarginLoss fed the same triplets; the sampler's probabilities against
the formula, and its draws (and PML's DistanceWeightedMiner's) statistically against them.

Conventions aligned for PML: MarginLoss(margin=0.2, beta=1.2, nu, learn_beta, num_classes) with
its default LpDistance (L2-normalized, as ours) and ``indices_tuple`` = our triplets. Differences
kept, and adjusted for below: (1) with one learnable global beta PML adds ``nu * beta`` once,
outside the division, while we add ``nu * beta`` per triplet inside it, as for per-class beta
(and as the authors' code does for its per-class beta); (2) PML's miner drops anchors whose
negatives all lie beyond the 1.4 cut-off, while we fall back to a uniform draw over their
negatives; (3) PML's miner draws each anchor's positives at random with replacement, while we
take every anchor-positive pair once.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import MarginLoss
from pytorch_metric_learning.miners import DistanceWeightedMiner

from losszoo import Margin, create_loss, get_loss_spec
from losszoo.losses.distance_weighted import (
    distance_weighted_probabilities,
    sample_distance_weighted_triplets,
)
from losszoo.losses.functional import pairwise_distances

LABELS = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4])  # class 4 is a singleton: never an anchor
DIM, NUM_CLASSES = 5, 6


def normalized_distances(x: torch.Tensor) -> torch.Tensor:
    return pairwise_distances(F.normalize(x, dim=1))


def random_triplets(labels: torch.Tensor, count: int) -> tuple[torch.Tensor, ...]:
    """Valid (a, p, n) triplets drawn uniformly, independently of the code under test."""
    ys = labels.tolist()
    all_triplets = [
        (a, p, n)
        for a in range(len(ys))
        for p in range(len(ys))
        for n in range(len(ys))
        if a != p and ys[a] == ys[p] and ys[n] != ys[a]
    ]
    chosen = torch.randint(len(all_triplets), (count,)).tolist()
    return tuple(torch.tensor(column) for column in zip(*(all_triplets[i] for i in chosen)))


def reference_margin(x, labels, triplets, beta, alpha=0.2, nu=0.0, learnable=True) -> float:
    """The margin loss over given triplets, by loops: beta is a list indexed by class (or len 1)."""
    rows = [[v / math.sqrt(sum(u * u for u in r)) for v in r] for r in x.tolist()]
    ys = labels.tolist()

    def dist(i: int, j: int) -> float:
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(rows[i], rows[j])))

    total, nonzero = 0.0, 0
    for a, p, n in zip(*(t.tolist() for t in triplets)):
        b = beta[ys[a]] if len(beta) > 1 else beta[0]
        pos = max(0.0, dist(a, p) - b + alpha)
        neg = max(0.0, b - dist(a, n) + alpha)
        total += pos + neg + (nu * b if learnable else 0.0)
        nonzero += (pos > 0) + (neg > 0)
    return total / nonzero if nonzero else 0.0


def make_margin(**kwargs) -> Margin:
    return Margin(DIM, NUM_CLASSES, **kwargs).double()


# ---------------------------------------------------------------- the margin term


@pytest.mark.parametrize("beta_mode", ["class", "global", "fixed"])
@pytest.mark.parametrize("nu", [0.0, 0.3])
def test_triplet_term_matches_loops(beta_mode, nu):
    loss = make_margin(beta_mode=beta_mode, nu=nu)
    with torch.no_grad():  # distinct betas, so using the anchor's class is what is checked
        loss.beta.copy_(0.9 + 0.1 * torch.arange(loss.beta.numel(), dtype=torch.float64))
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64)
    triplets = random_triplets(LABELS, 40)
    value = loss.triplet_loss(normalized_distances(x), LABELS, triplets)
    expected = reference_margin(
        x, LABELS, triplets, loss.beta.tolist(), nu=nu, learnable=beta_mode != "fixed"
    )
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_forward_is_the_term_on_the_sampled_triplets():
    loss = make_margin(nu=0.1)
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64)
    torch.manual_seed(7)
    value = loss(x, LABELS)
    torch.manual_seed(7)
    triplets = sample_distance_weighted_triplets(normalized_distances(x), LABELS, dim=DIM)
    expected = reference_margin(x, LABELS, triplets, loss.beta.tolist(), nu=0.1)
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("nu", [0.0, 0.2])
def test_matches_pytorch_metric_learning_per_class_beta(nu):
    ours = make_margin(nu=nu)
    theirs = MarginLoss(margin=0.2, nu=nu, beta=1.2, learn_beta=True, num_classes=NUM_CLASSES).double()
    with torch.no_grad():
        betas = 1.0 + 0.05 * torch.arange(NUM_CLASSES, dtype=torch.float64)
        ours.beta.copy_(betas)
        theirs.beta.copy_(betas)
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64, requires_grad=True)
    triplets = random_triplets(LABELS, 30)
    value_ours = ours.triplet_loss(normalized_distances(x), LABELS, triplets)
    value_theirs = theirs(x, LABELS, indices_tuple=triplets)
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    grads_ours = torch.autograd.grad(value_ours, (x, ours.beta))
    grads_theirs = torch.autograd.grad(value_theirs, (x, theirs.beta))
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("nu", [0.0, 0.2])
def test_matches_pytorch_metric_learning_global_beta(nu):
    ours = make_margin(beta_mode="global", nu=nu)
    theirs = MarginLoss(margin=0.2, nu=nu, beta=1.2, learn_beta=True).double()
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64)
    triplets = random_triplets(LABELS, 30)
    distances = normalized_distances(x)
    value_ours = ours.triplet_loss(distances, LABELS, triplets)
    beta = ours.beta.item()  # 1.2 rounded to float32, as PML's
    assert beta == theirs.beta.item()
    value_theirs = theirs(x, LABELS, indices_tuple=triplets)
    # PML: sum(terms)/nonzero + nu*beta. Ours: (sum(terms) + nu*beta*T)/nonzero.
    a, p, n = triplets
    nonzero = ((distances[a, p] - beta + 0.2 > 0).sum() + (beta - distances[a, n] + 0.2 > 0).sum()).item()
    adjusted = value_theirs - nu * beta + nu * beta * len(a) / nonzero
    torch.testing.assert_close(value_ours, adjusted.reshape(()), rtol=1e-10, atol=1e-12)


def test_matches_pytorch_metric_learning_fixed_beta():
    ours = make_margin(beta_mode="fixed", nu=0.5)  # nu has no effect on a constant beta
    theirs = MarginLoss(margin=0.2, nu=0.5, beta=1.2, learn_beta=False)
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64)
    triplets = random_triplets(LABELS, 30)
    torch.testing.assert_close(
        ours.triplet_loss(normalized_distances(x), LABELS, triplets),
        theirs(x, LABELS, indices_tuple=triplets).reshape(()),
        rtol=1e-10,
        atol=1e-12,
    )
    assert [name for name, _ in ours.named_parameters()] == []


def test_zero_when_every_term_is_zero():
    loss = Margin(2, NUM_CLASSES, nu=0.3).double()
    # Positives at distance ~0 < beta - alpha and negatives at 2 > beta + alpha: all relus are 0.
    x = torch.tensor([[1.0, 0.0], [1.0, 1e-9], [-1.0, 0.0], [-1.0, 1e-9]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    value = loss(x.requires_grad_(True), labels)
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------- the sampler

# An anchor (sample 0) with a close positive (sample 1) and negatives at chosen distances: below
# the 0.5 clip, in between, and at/after the 1.4 cut-off. All points lie on one great circle,
# the one at distance d from the anchor at angle t = 2 asin(d / 2). n = 4 keeps the weights
# d^-2 (1 - d^2/4)^-1/2 within a factor ~6, so every negative is drawn often enough to check.
SAMPLER_DIM = 4
NEGATIVE_DISTANCES = [0.2, 0.45, 0.7, 1.0, 1.25, 1.39, 1.41, 1.9]
SAMPLER_LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def sampler_batch() -> torch.Tensor:
    points = torch.zeros(2 + len(NEGATIVE_DISTANCES), SAMPLER_DIM, dtype=torch.float64)
    for row, d in enumerate([0.0, 0.3, *NEGATIVE_DISTANCES]):
        t = 2 * math.asin(d / 2) * (-1 if row == 1 else 1)
        points[row, 0], points[row, 1] = math.cos(t), math.sin(t)
    return points


def reference_probabilities(x: torch.Tensor, labels: torch.Tensor, cutoff=0.5, nonzero_cutoff=1.4):
    """Per anchor: weight q(max(d, 0.5))^-1 on negatives with max(d, 0.5) < 1.4, normalised."""
    rows, ys, n = x.tolist(), labels.tolist(), x.shape[1]
    table = []
    for a in range(len(rows)):
        weights = []
        for k in range(len(rows)):
            d = max(cutoff, math.sqrt(sum((u - v) ** 2 for u, v in zip(rows[a], rows[k]))))
            ok = ys[k] != ys[a] and d < nonzero_cutoff
            weights.append(d ** (2 - n) * (1 - d * d / 4) ** (-(n - 3) / 2) if ok else 0.0)
        if sum(weights) == 0:  # the documented fallback: uniform over the negatives
            weights = [1.0 if ys[k] != ys[a] else 0.0 for k in range(len(rows))]
        total = sum(weights)
        table.append([w / total if total else 0.0 for w in weights])
    return torch.tensor(table, dtype=torch.float64)


def test_geometry_of_the_sampler_batch():
    distances = pairwise_distances(sampler_batch())
    torch.testing.assert_close(distances[0, 2:], torch.tensor(NEGATIVE_DISTANCES, dtype=torch.float64))


def test_probabilities_match_the_formula_with_clip_and_cutoff():
    x = sampler_batch()
    probabilities = distance_weighted_probabilities(pairwise_distances(x), SAMPLER_LABELS, dim=SAMPLER_DIM)
    expected = reference_probabilities(x, SAMPLER_LABELS)
    torch.testing.assert_close(probabilities, expected, rtol=1e-10, atol=1e-14)
    row = probabilities[0]
    assert row[:2].sum() == 0  # never the anchor itself or its positive
    assert row[2] == row[3] == pytest.approx(row[2].item())  # 0.2 and 0.45 both clip to 0.5
    assert row[2] > 0
    assert row[8] == row[9] == 0  # 1.41 and 1.9 are past the cut-off
    assert row[7] > 0  # 1.39 is not
    assert row.sum().item() == pytest.approx(1.0)


def test_all_negatives_past_the_cutoff_fall_back_to_uniform_over_negatives():
    x = torch.eye(4, dtype=torch.float64)  # every distance is sqrt(2) > 1.4
    labels = torch.tensor([0, 0, 1, 2])
    probabilities = distance_weighted_probabilities(pairwise_distances(x), labels, dim=4)
    third = 1 / 3
    expected = torch.tensor(
        [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [third, third, 0, third], [third, third, third, 0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(probabilities, expected)


def test_no_negatives_no_triplets():
    x = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.zeros(4, dtype=torch.long)
    assert distance_weighted_probabilities(pairwise_distances(x), labels, dim=3).sum() == 0
    a, p, n = sample_distance_weighted_triplets(pairwise_distances(x), labels, dim=3)
    assert a.numel() == p.numel() == n.numel() == 0


def test_sampler_returns_one_valid_negative_per_ordered_positive_pair_and_is_seeded():
    x = F.normalize(torch.randn(len(LABELS), DIM, dtype=torch.float64), dim=1)
    distances = pairwise_distances(x)
    torch.manual_seed(3)
    a, p, n = sample_distance_weighted_triplets(distances, LABELS, dim=DIM)
    ys = LABELS.tolist()
    expected_pairs = [(i, j) for i in range(len(ys)) for j in range(len(ys)) if i != j and ys[i] == ys[j]]
    assert sorted(zip(a.tolist(), p.tolist())) == expected_pairs
    assert (LABELS[n] != LABELS[a]).all()
    torch.manual_seed(3)
    again = sample_distance_weighted_triplets(distances, LABELS, dim=DIM)
    assert all(torch.equal(u, v) for u, v in zip((a, p, n), again))


def assert_frequencies_match(counts: torch.Tensor, probabilities: torch.Tensor) -> None:
    """Empirical frequencies per anchor row within 5 binomial standard deviations (+ slack)."""
    draws = counts.sum(dim=1, keepdim=True)
    frequencies = counts / draws
    std = (probabilities * (1 - probabilities) / draws).sqrt()
    assert (counts[probabilities == 0] == 0).all()
    deviation = (frequencies - probabilities).abs()
    assert (deviation <= 5 * std + 2e-3).all(), deviation.max()


def test_sampled_negatives_follow_the_weights():
    x = sampler_batch()
    distances = pairwise_distances(x)
    probabilities = distance_weighted_probabilities(distances, SAMPLER_LABELS, dim=SAMPLER_DIM)
    counts = torch.zeros_like(probabilities)
    for _ in range(1000):
        a, _, n = sample_distance_weighted_triplets(distances, SAMPLER_LABELS, dim=SAMPLER_DIM)
        counts.index_put_((a, n), torch.ones_like(a, dtype=counts.dtype), accumulate=True)
    assert_frequencies_match(counts, reference_probabilities(x, SAMPLER_LABELS))
    # The weights are far from uniform here: clipped negatives ~5x more often than at 1.39.
    assert counts[0, 2] > 3 * counts[0, 7]


def test_pytorch_metric_learning_miner_draws_the_same_negative_distribution():
    x = sampler_batch()
    miner = DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
    counts = Counter()
    for _ in range(400):
        a, _, n = miner(x, SAMPLER_LABELS)
        counts.update(zip(a.tolist(), n.tolist()))
    table = torch.zeros(len(SAMPLER_LABELS), len(SAMPLER_LABELS), dtype=torch.float64)
    for (anchor, negative), count in counts.items():
        table[anchor, negative] = count
    assert_frequencies_match(table, reference_probabilities(x, SAMPLER_LABELS))


def test_pytorch_metric_learning_miner_drops_anchors_we_give_a_uniform_negative():
    x = torch.eye(4)  # every distance is sqrt(2), past the 1.4 cut-off
    labels = torch.tensor([0, 0, 1, 2])
    a, _, _ = DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)(x, labels)
    assert a.numel() == 0
    a, _, n = sample_distance_weighted_triplets(pairwise_distances(x), labels, dim=4)
    assert a.tolist() == [0, 1] and set(n.tolist()) <= {2, 3}


# ---------------------------------------------------------------- options and registration


def test_bad_options_raise():
    with pytest.raises(ValueError, match="beta_mode"):
        Margin(DIM, NUM_CLASSES, beta_mode="image")
    with pytest.raises(ValueError, match="cutoff"):
        Margin(DIM, NUM_CLASSES, cutoff=1.5, nonzero_loss_cutoff=1.4)
    with pytest.raises(ValueError, match="cutoff"):
        Margin(DIM, NUM_CLASSES, cutoff=0.0)


def test_beta_shapes_per_mode():
    assert make_margin().beta.shape == (NUM_CLASSES,)
    assert make_margin(beta_mode="global").beta.shape == (1,)
    assert make_margin().beta.requires_grad and make_margin(beta_mode="global").beta.requires_grad
    assert not make_margin(beta_mode="fixed").beta.requires_grad
    assert torch.equal(Margin(DIM, NUM_CLASSES).beta, torch.full((NUM_CLASSES,), 1.2))


def test_registered_with_paper_defaults():
    spec = get_loss_spec("margin")
    assert spec.cls is Margin and spec.sampler == "class_balanced"
    assert spec.needs_num_classes and spec.needs_embedding_dim
    assert dict(spec.defaults) == {
        "alpha": 0.2,
        "beta": 1.2,
        "beta_mode": "class",
        "nu": 0.0,
        "cutoff": 0.5,
        "nonzero_loss_cutoff": 1.4,
    }
    assert isinstance(create_loss("margin", embedding_dim=8, num_classes=3), Margin)

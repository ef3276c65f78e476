"""NormSoftmax (Zhai & Wu 2019, eq. 1): value against eq. 1 written as loops, values and gradients
against pytorch-metric-learning's NormalizedSoftmaxLoss, and the class subsampling of Sec. 4.5
(``ClassWeights.select``, ``sample_other_classes``) with its sparse class-weight gradient."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from pytorch_metric_learning.losses import NormalizedSoftmaxLoss

from helpers import forward_backward, gaussian_batch, vary_class_weight_norms
from losszoo import NormSoftmax, create_loss
from losszoo.losses.proxies import ClassWeights, sample_other_classes

DIM, NUM_CLASSES, BATCH = 5, 11, 12


def random_batch(seed: int, batch: int = BATCH, num_classes: int = NUM_CLASSES):
    return gaussian_batch(seed, batch, DIM, num_classes)


def few_class_batch(seed: int, num_present: int = 3, per_class: int = 4):
    """A class-balanced batch (num_present classes x per_class samples), as the paper samples:
    the subsampled softmax then has room for classes outside the batch."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_present * per_class, DIM, generator=g, dtype=torch.float64)
    classes = torch.randperm(NUM_CLASSES, generator=g)[:num_present]
    return x, classes.repeat_interleave(per_class)


def make_normsoftmax(num_classes: int = NUM_CLASSES, **kwargs) -> NormSoftmax:
    loss = create_loss("normsoftmax", embedding_dim=DIM, num_classes=num_classes, **kwargs).double()
    return vary_class_weight_norms(loss)


def reference_normsoftmax(x, labels, weights, temperature, classes=None) -> float:
    """Eq. 1 of Zhai & Wu (2019), one sample and one class at a time: -log softmax of
    x.p_z / T at z = y over the classes Z (``classes``, all rows of ``weights`` if None),
    x and every p_z L2-normalized, averaged over the batch."""
    rows = weights.tolist()
    classes = range(len(rows)) if classes is None else [int(c) for c in classes]
    units = {}
    for z in classes:
        norm = math.sqrt(sum(v * v for v in rows[z]))
        units[z] = [v / norm for v in rows[z]]
    total = 0.0
    for i, xi in enumerate(x.tolist()):
        norm = math.sqrt(sum(v * v for v in xi))
        xi = [v / norm for v in xi]
        logits = {z: sum(a * b for a, b in zip(xi, p)) / temperature for z, p in units.items()}
        y = int(labels[i])
        assert y in logits, "the target class must be among the softmax's classes"
        total += -math.log(math.exp(logits[y]) / sum(math.exp(v) for v in logits.values()))
    return total / len(labels)


def expected_num_sampled(ratio: float, num_classes: int, labels: torch.Tensor) -> int:
    """max(ceil(r * C), #present), with r * C computed exactly (r as the decimal it is written as)."""
    return max(math.ceil(Fraction(str(ratio)) * num_classes), labels.unique().numel())


def sampled_classes(labels: torch.Tensor, ratio: float, num_classes: int, seed: int) -> torch.Tensor:
    """The class indices ``select`` picks under ``torch.manual_seed(seed)``: the batch's classes
    and the random others (same draws from the same global generator), in increasing order (the
    order that keeps SGD's sparse momentum buffer from growing)."""
    torch.manual_seed(seed)
    present = labels.unique()
    count = max(math.ceil(Fraction(str(ratio)) * num_classes), present.numel()) - present.numel()
    return torch.cat([present, sample_other_classes(present, count, num_classes)]).sort().values


# -- eq. 1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
def test_matches_paper_formula(seed, temperature):
    x, labels = random_batch(seed)
    # T = 0.05 through the registry's default (the paper's value), the others passed explicitly.
    loss = make_normsoftmax(**({} if temperature == 0.05 else {"temperature": temperature}))
    assert loss.temperature == temperature and loss.class_subsample == 1.0
    expected = reference_normsoftmax(x, labels, loss.proxies.weight.detach(), temperature)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    # The embeddings' norm does not matter (eq. 1 normalizes x), the weights' norms neither.
    assert loss(7.5 * x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
def test_matches_pytorch_metric_learning(seed, temperature):
    # Aligned: PML's NormalizedSoftmaxLoss(num_classes, embedding_size, temperature) computes
    # eq. 1 (DotProductSimilarity with normalized embeddings, W normalized per class, cross
    # entropy, MeanReducer over the batch, no weight regularizer). It stores W as [D, C], ours
    # as [C, D]: we copy the transpose and compare its gradient transposed. Both in float64.
    x, labels = random_batch(seed)
    ours = make_normsoftmax(temperature=temperature)
    theirs = NormalizedSoftmaxLoss(NUM_CLASSES, DIM, temperature=temperature).double()
    with torch.no_grad():
        theirs.W.copy_(ours.proxies.weight.T)
    value_ours, grad_ours = forward_backward(ours, x, labels)
    value_theirs, grad_theirs = forward_backward(theirs, x, labels)
    assert not ours.proxies.weight.grad.is_sparse
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.proxies.weight.grad, theirs.W.grad.T, rtol=1e-10, atol=1e-12)


# -- class subsampling, Sec. 4.5 ----------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.5, 0.75, 0.95])
@pytest.mark.parametrize("seed", [0, 1])
def test_select_keeps_the_batch_classes_and_remaps_labels(ratio, seed):
    # Labels drawn from 5 of 11 classes, so some ratios need more classes than the batch has
    # and r = 0.05 (ceil = 1) fewer: then exactly the batch's classes are used.
    labels = torch.tensor([7, 2, 2, 9, 0, 7, 9, 9, 4, 0])[torch.randperm(10)]
    weights = ClassWeights(NUM_CLASSES, DIM).double()
    expected_rows = sampled_classes(labels, ratio, NUM_CLASSES, seed)
    torch.manual_seed(seed)
    rows, remapped = weights.select(labels, ratio)
    present = set(labels.tolist())
    num_sampled = expected_num_sampled(ratio, NUM_CLASSES, labels)
    assert rows.shape == (num_sampled, DIM) and expected_rows.numel() == num_sampled
    assert remapped.dtype == torch.long and remapped.shape == labels.shape
    assert int(remapped.min()) >= 0 and int(remapped.max()) < num_sampled
    # The remapped labels index the weights of the true classes...
    torch.testing.assert_close(rows[remapped], weights.weight[labels], rtol=0, atol=0)
    # ...and the rows are the batch's classes plus distinct others that are not in the batch.
    torch.testing.assert_close(rows, weights.weight[expected_rows], rtol=0, atol=0)
    chosen = expected_rows.tolist()
    assert len(set(chosen)) == num_sampled and present <= set(chosen)
    assert all(0 <= c < NUM_CLASSES for c in chosen)


@pytest.mark.parametrize("num_present", [0, 1, 4])
@pytest.mark.parametrize("count", [0, 1, 3, 20 - 4])
def test_sample_other_classes_are_distinct_and_absent(num_present, count):
    # count = 16 with 4 present takes every other class (the permutation branch); small counts
    # take the rejection-sampling branch.
    num_classes = 20
    present = torch.tensor([3, 17, 8, 0][:num_present], dtype=torch.long)
    for _ in range(50):
        others = sample_other_classes(present, count, num_classes)
        values = others.tolist()
        assert len(values) == count and len(set(values)) == count
        assert not set(values) & set(present.tolist())
        assert all(0 <= v < num_classes for v in values)


def test_sample_other_classes_cost_scales_with_the_count():
    # A trillion classes: anything proportional to C (a permutation, a mask) could not run.
    present = torch.tensor([5, 123_456_789_012])
    others = sample_other_classes(present, 7, 10**12)
    assert others.numel() == 7 and len(set(others.tolist()) | {5, 123_456_789_012}) == 9


@pytest.mark.parametrize("count", [2, 9])  # rejection branch, permutation branch (2*(9+3) > 20)
def test_sample_other_classes_are_uniform_over_the_absent_classes(count):
    num_classes, draws = 20, 3000
    present = torch.tensor([0, 6, 13])
    absent = [c for c in range(num_classes) if c not in present.tolist()]
    torch.manual_seed(1234)
    hits = torch.zeros(num_classes)
    for _ in range(draws):
        hits[sample_other_classes(present, count, num_classes)] += 1
    assert hits[present].sum() == 0
    p = count / len(absent)
    expected, sd = draws * p, math.sqrt(draws * p * (1 - p))
    # Each class's hit count is Binomial(draws, p); a loose 5-sigma bound (about 2.5% relative
    # for count 9, 10% for count 2) still catches e.g. a bias towards low indices.
    deviation = (hits[absent] - expected).abs().max().item()
    assert deviation < 5 * sd, (hits[absent].tolist(), expected)
    # And not every draw the same set (the permutation must actually be random).
    first_two = {tuple(sorted(sample_other_classes(present, count, num_classes).tolist()))
                 for _ in range(20)}
    assert len(first_two) > 1


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.95])
@pytest.mark.parametrize("temperature", [0.05, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsampled_loss_matches_eq1_over_the_selected_classes(ratio, temperature, seed):
    # 3 classes in the batch of 11: r = 0.1 keeps only them, 0.3 and 0.5 add 1 and 3 others,
    # 0.95 takes all 11 (in a random order).
    x, labels = few_class_batch(seed)
    loss = make_normsoftmax(temperature=temperature, class_subsample=ratio)
    assert loss.training and loss.sparse_gradients
    classes = sampled_classes(labels, ratio, NUM_CLASSES, seed)
    assert classes.numel() == expected_num_sampled(ratio, NUM_CLASSES, labels)
    torch.manual_seed(seed)
    value = loss(x, labels).item()
    weights = loss.proxies.weight.detach()
    expected = reference_normsoftmax(x, labels, weights, temperature, classes=classes)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)
    # More classes in the denominator, a larger loss: batch classes only < selected < all.
    present_only = reference_normsoftmax(x, labels, weights, temperature, classes=labels.unique())
    full = reference_normsoftmax(x, labels, weights, temperature)
    if 3 < classes.numel() < NUM_CLASSES:
        assert present_only < value < full


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_subsampled_gradient_is_sparse_on_the_selected_rows(ratio):
    x, labels = few_class_batch(4)
    loss = make_normsoftmax(class_subsample=ratio)
    classes = sampled_classes(labels, ratio, NUM_CLASSES, seed=11)
    x_ours = x.clone().requires_grad_()
    torch.manual_seed(11)
    loss(x_ours, labels).backward()
    grad = loss.proxies.weight.grad
    assert grad.is_sparse
    grad = grad.coalesce()
    # Exactly the selected rows are stored: memory scales with the sampled classes, not with C.
    assert sorted(grad.indices()[0].tolist()) == sorted(classes.tolist())
    assert grad.values().shape == (classes.numel(), DIM)
    assert labels.unique().numel() < classes.numel() < NUM_CLASSES  # some others, not all
    assert (grad.values().abs().sum(dim=1) > 0).all()
    # The values: autograd through an independent dense formula of eq. 1 over the same classes.
    weight = loss.proxies.weight.detach().clone().requires_grad_()
    x_ref = x.clone().requires_grad_()
    units = weight[classes] / weight[classes].norm(dim=1, keepdim=True)
    logits = (x_ref / x_ref.norm(dim=1, keepdim=True)) @ units.T / loss.temperature
    targets = torch.tensor([classes.tolist().index(y) for y in labels.tolist()])
    reference = (logits.logsumexp(dim=1) - logits[torch.arange(len(labels)), targets]).mean()
    reference.backward()
    torch.testing.assert_close(grad.to_dense(), weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    unselected = [c for c in range(NUM_CLASSES) if c not in classes.tolist()]
    assert (weight.grad[unselected] == 0).all()


def test_ratio_one_and_eval_mode_use_every_class():
    x, labels = few_class_batch(5)
    for loss in (make_normsoftmax(), make_normsoftmax(class_subsample=0.3).eval()):
        expected = reference_normsoftmax(x, labels, loss.proxies.weight.detach(), 0.05)
        assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
        loss(x, labels).backward()
        grad = loss.proxies.weight.grad
        assert not grad.is_sparse and (grad.abs().sum(dim=1) > 0).all()  # every class's row
    assert not make_normsoftmax().sparse_gradients
    # select with r = 1 is the identity: all rows, labels unchanged.
    weights = ClassWeights(NUM_CLASSES, DIM)
    rows, targets = weights.select(labels, 1.0)
    assert rows is weights.weight and torch.equal(targets, labels)
    # Back in training mode, the subsampled loss differs from the full one again.
    loss = make_normsoftmax(class_subsample=0.3)
    full = reference_normsoftmax(x, labels, loss.proxies.weight.detach(), 0.05)
    assert loss.eval().train()(x, labels).item() < full


def test_bad_hyperparameters():
    for ratio in (0.0, -0.1, 1.0001, 2.0, float("nan")):
        with pytest.raises(ValueError, match="class_subsample"):
            NormSoftmax(DIM, NUM_CLASSES, class_subsample=ratio)
    for temperature in (0.0, -0.05):
        with pytest.raises(ValueError, match="temperature"):
            NormSoftmax(DIM, NUM_CLASSES, temperature=temperature)
    # Any T > 0 and r in (0, 1] are accepted, r = 1 included.
    NormSoftmax(DIM, NUM_CLASSES, temperature=1e-3, class_subsample=1e-6)
    NormSoftmax(DIM, NUM_CLASSES, temperature=100.0, class_subsample=1.0)


def test_num_sampled_classes_uses_exact_ratio_times_classes():
    """ceil(r * C) in float would give 8 here: 0.035 * 200 = 7.000000000000001."""
    num_classes, ratio = 200, 0.035
    labels = torch.tensor([0, 1])
    rows, _ = ClassWeights(num_classes, 2).select(labels, ratio)
    assert rows.shape[0] == 7


def test_nan_temperature_is_rejected():
    with pytest.raises(ValueError, match="temperature"):
        NormSoftmax(DIM, NUM_CLASSES, temperature=float("nan"))


def test_int32_labels_give_the_same_loss():
    """check_inputs accepts any integer labels; F.cross_entropy needs int64."""
    x, labels = random_batch(6)
    loss = make_normsoftmax()
    torch.testing.assert_close(loss(x, labels.int()), loss(x, labels))

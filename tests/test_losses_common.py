"""Properties every registered loss must have, whatever its equation.

gradcheck in float64, finite values and gradients on degenerate batches, clear errors for bad
input, and a finite loss under CPU bf16 autocast. Value checks against each paper's formula
and against pytorch-metric-learning live in the per-family test files.
"""

from __future__ import annotations

import pytest
import torch

from losszoo import create_loss, get_loss_spec, list_losses

DIM, NUM_CLASSES = 6, 8
# A class-balanced batch of 4 classes x 2 samples: valid for every sampler, N-pair included.
LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
# The zoo's own losses; adapted pytorch-metric-learning losses (tag "pml") promise PML's exact
# values instead, which tests/test_adapters.py checks.
ALL_LOSSES = [name for name in list_losses() if "pml" not in get_loss_spec(name).tags]


def make(name: str, dtype: torch.dtype = torch.float64):
    return create_loss(name, embedding_dim=DIM, num_classes=NUM_CLASSES).to(dtype)


def seeded(loss, labels):
    """The loss as a deterministic function of the embeddings (some losses sample inside)."""

    def fn(x):
        torch.manual_seed(1234)
        return loss(x, labels)

    return fn


def assert_finite_with_grads(loss, x, labels):
    x = x.clone().requires_grad_(True)
    value = seeded(loss, labels)(x)
    assert value.dim() == 0 and torch.isfinite(value), f"loss {value}"
    value.backward()
    assert torch.isfinite(x.grad).all()
    for name, p in loss.named_parameters():
        if p.grad is not None:
            grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
            assert torch.isfinite(grad).all(), name
    return value


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradcheck_float64(name):
    loss = make(name)
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(seeded(loss, LABELS), (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_parameters_get_gradients(name):
    loss = make(name)
    x = torch.randn(len(LABELS), DIM, dtype=torch.float64)
    assert_finite_with_grads(loss, x, LABELS)
    for pname, p in loss.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"


DEGENERATE = {
    "one_class": (lambda: torch.randn(6, DIM, dtype=torch.float64), torch.zeros(6, dtype=torch.long)),
    "no_positives": (lambda: torch.randn(6, DIM, dtype=torch.float64), torch.arange(6)),
    "all_equal": (lambda: torch.ones(8, DIM, dtype=torch.float64), LABELS),
    "duplicates": (lambda: torch.randn(4, DIM, dtype=torch.float64).repeat(2, 1), LABELS),
    "single_sample": (lambda: torch.randn(1, DIM, dtype=torch.float64), torch.tensor([3])),
}


@pytest.mark.parametrize("case", DEGENERATE)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_degenerate_batches_are_finite(name, case):
    make_x, labels = DEGENERATE[case]
    assert_finite_with_grads(make(name), make_x(), labels)


# Losses built on anchor-positive pairs have nothing to measure without positives (N-pair's L2
# penalty is over pairs too); triplet and lifted have nothing without negatives either.
NEEDS_POSITIVES = {"triplet", "margin", "npair", "lifted", "multisimilarity", "supcon"}
NEEDS_NEGATIVES = {"triplet", "lifted", "multisimilarity"}


@pytest.mark.parametrize("name", sorted(NEEDS_POSITIVES & set(ALL_LOSSES)))
def test_zero_loss_without_positives(name):
    x = torch.randn(6, DIM, dtype=torch.float64)
    assert assert_finite_with_grads(make(name), x, torch.arange(6)).item() == 0.0


@pytest.mark.parametrize("name", sorted(NEEDS_NEGATIVES & set(ALL_LOSSES)))
def test_zero_loss_without_negatives(name):
    x = torch.randn(6, DIM, dtype=torch.float64)
    assert assert_finite_with_grads(make(name), x, torch.zeros(6, dtype=torch.long)).item() == 0.0


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_bad_input_gives_clear_errors(name):
    loss = make(name, torch.float32)
    x, y = torch.randn(8, DIM), LABELS
    with pytest.raises(ValueError, match="2-D"):
        loss(x[0], y)
    with pytest.raises(ValueError, match="2-D"):
        loss(x[None], y)
    with pytest.raises(ValueError, match="one label per embedding"):
        loss(x, y[:-1])
    with pytest.raises(ValueError, match="NaN or inf"):
        loss(torch.where(torch.arange(8)[:, None] == 3, float("nan"), x), y)
    with pytest.raises(ValueError, match="NaN or inf"):
        loss(torch.full_like(x, float("inf")), y)
    with pytest.raises(TypeError, match="integer"):
        loss(x, y.float())
    with pytest.raises(TypeError, match="floating point"):
        loss(x.long(), y)
    with pytest.raises(ValueError, match="empty batch"):
        loss(x[:0], y[:0])


@pytest.mark.parametrize(
    "name", [n for n in ALL_LOSSES if get_loss_spec(n).needs_num_classes]
)
def test_class_weight_losses_check_labels_and_dim(name):
    loss = make(name, torch.float32)
    x = torch.randn(8, DIM)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 8\)"):
        loss(x, LABELS + 5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 8\)"):
        loss(x, LABELS - 1)
    with pytest.raises(ValueError, match="does not match the loss's embedding_dim"):
        loss(torch.randn(8, DIM + 1), LABELS)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_bf16_autocast_on_cpu_is_finite(name):
    loss = make(name, torch.float32)
    x = torch.randn(16, DIM, requires_grad=True)
    labels = torch.arange(8).repeat_interleave(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        value = loss(x, labels)
    assert torch.isfinite(value.float())
    value.float().backward()
    assert torch.isfinite(x.grad).all()

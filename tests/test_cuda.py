"""The CUDA path: mixed-precision training steps, evaluation and class subsampling on a GPU.

Marked ``cuda`` and skipped without one (``pytest -m cuda`` selects them; benchmarks/gpu_check.sh
runs them on a lent GPU machine). The CPU suite covers the same code on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from losszoo import create_loss, get_loss_spec, list_losses
from losszoo.evaluation import binarize, evaluate, nearest_neighbors

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

DIM, NUM_CLASSES = 32, 16
OWN_LOSSES = [name for name in list_losses() if "pml" not in get_loss_spec(name).tags]


@pytest.mark.parametrize("name", OWN_LOSSES)
def test_amp_training_step_is_finite(name):
    """One fp16-autocast step with a GradScaler: finite loss, finite gradients, weights move."""
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = torch.nn.Linear(24, DIM).to(device)
    loss = create_loss(name, embedding_dim=DIM, num_classes=NUM_CLASSES).to(device)
    params = list(model.parameters()) + [p for p in loss.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01)
    scaler = torch.amp.GradScaler("cuda")
    inputs = torch.randn(32, 24, device=device)
    labels = torch.arange(8, device=device).repeat_interleave(4)
    before = model.weight.detach().clone()
    with torch.autocast("cuda", dtype=torch.float16):
        value = loss(model(inputs), labels)
    assert torch.isfinite(value.float()), f"{name}: loss {value}"
    scaler.scale(value.float()).backward()
    scaler.unscale_(optimizer)
    for param in params:
        if param.grad is not None:
            grad = param.grad.coalesce().values() if param.grad.is_sparse else param.grad
            assert torch.isfinite(grad).all(), f"{name}: non-finite gradient"
    scaler.step(optimizer)
    scaler.update()
    assert not torch.equal(model.weight.detach(), before), f"{name}: the step did not change the model"


def clustered_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, 64))
    labels = np.repeat(np.arange(40), 6)
    return (centers[labels] + 0.8 * rng.standard_normal((240, 64))).astype(np.float32), labels


def test_evaluation_on_cuda_equals_cpu():
    """torch top-k on CUDA (backend="torch" picks the GPU) vs faiss on the CPU, CUDA tensors in."""
    embeddings, labels = clustered_data()
    metrics = ("recall", "map_at_r", "r_precision")
    cpu = evaluate(embeddings, labels, ks=(1, 2, 4, 8), metrics=metrics, backend="faiss")
    on_gpu = evaluate(
        torch.from_numpy(embeddings).cuda(),
        torch.from_numpy(labels).cuda(),
        ks=(1, 2, 4, 8),
        metrics=metrics,
        backend="torch",
    )
    assert on_gpu == pytest.approx(cpu, abs=1e-12)


def test_binary_neighbours_on_cuda_match_cpu_distances():
    """Hamming kNN by ±1 matmul + top-k on CUDA: the same distances as faiss on the CPU (torch's
    top-k orders exact ties its own way, so ids are compared through their distances)."""
    embeddings, _ = clustered_data()
    codes = binarize(embeddings)
    bits = np.unpackbits(codes, axis=1).astype(np.int64)

    def distances(found: np.ndarray) -> np.ndarray:
        return (bits[found] != bits[:, None, :]).sum(axis=2)

    on_gpu = nearest_neighbors(codes, 12, metric="hamming", backend="torch")
    on_cpu = nearest_neighbors(codes, 12, metric="hamming", backend="faiss")
    np.testing.assert_array_equal(distances(on_gpu), distances(on_cpu))


def test_class_subsampling_on_cuda():
    """NormSoftmax with r = 0.1 of 1000 classes: ceil(r * C) rows get gradients, the batch's
    classes among them, all on the GPU; in eval mode (every class) CUDA equals CPU."""
    torch.manual_seed(0)
    num_classes, ratio = 1000, 0.1
    loss = create_loss("normsoftmax", embedding_dim=DIM, num_classes=num_classes, class_subsample=ratio).cuda()
    embeddings = torch.randn(24, DIM, device="cuda", requires_grad=True)
    labels = torch.randint(0, num_classes, (24,), device="cuda")
    value = loss(embeddings, labels)
    value.backward()
    assert torch.isfinite(value)
    weight_grads = [p.grad for p in loss.parameters() if p.grad is not None]
    assert len(weight_grads) == 1 and weight_grads[0].is_cuda and weight_grads[0].is_sparse
    rows = weight_grads[0].coalesce().indices()[0].unique()
    assert rows.numel() == math.ceil(ratio * num_classes)
    assert torch.isin(labels.unique(), rows).all()
    loss.eval()
    with torch.no_grad():
        gpu_value = loss(embeddings, labels)
        cpu_value = loss.cpu()(embeddings.detach().cpu(), labels.cpu())
    torch.testing.assert_close(gpu_value.cpu(), cpu_value, rtol=1e-5, atol=1e-5)

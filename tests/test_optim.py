"""LazySparseSGD: exact SGD on dense gradients and on sparse ones that cover every row; the
row-wise formula (TensorFlow's sparse_apply_momentum) otherwise."""

from __future__ import annotations

import pytest
import torch

from losszoo.training.optim import LazySparseSGD

C, D = 12, 5


def sparse_rows(rows: list[int], values: torch.Tensor) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, (C, D), check_invariants=True)


def test_equals_sgd_when_every_row_is_in_every_gradient():
    torch.manual_seed(0)
    start = torch.randn(C, D, dtype=torch.float64)
    lazy_w = torch.nn.Parameter(start.clone())
    dense_w = torch.nn.Parameter(start.clone())
    lazy = LazySparseSGD([lazy_w], lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD([dense_w], lr=0.1, momentum=0.9)
    for _ in range(5):
        grad = torch.randn(C, D, dtype=torch.float64)
        lazy_w.grad = sparse_rows(list(range(C)), grad)
        dense_w.grad = grad.clone()
        lazy.step()
        sgd.step()
    torch.testing.assert_close(lazy_w, dense_w, rtol=1e-14, atol=1e-14)


def test_untouched_rows_keep_their_velocity_and_do_not_move():
    torch.manual_seed(1)
    weight = torch.nn.Parameter(torch.randn(C, D, dtype=torch.float64))
    optimizer = LazySparseSGD([weight], lr=0.05, momentum=0.9)
    expected_w, velocity = weight.detach().clone(), torch.zeros(C, D, dtype=torch.float64)
    for rows in ([0, 3, 7], [3, 4], [0, 11], [7]):
        values = torch.randn(len(rows), D, dtype=torch.float64)
        weight.grad = sparse_rows(rows, values)
        optimizer.step()
        for row, value in zip(rows, values):  # the formula, one row at a time
            velocity[row] = 0.9 * velocity[row] + value
            expected_w[row] -= 0.05 * velocity[row]
    torch.testing.assert_close(weight.detach(), expected_w, rtol=1e-14, atol=1e-14)
    assert torch.equal(optimizer.state[weight]["momentum_buffer"], velocity)
    untouched = [r for r in range(C) if r not in (0, 3, 4, 7, 11)]
    assert torch.equal(velocity[untouched], torch.zeros(len(untouched), D, dtype=torch.float64))


def test_dense_parameters_are_stepped_by_sgd_with_weight_decay():
    torch.manual_seed(2)
    dense = torch.nn.Parameter(torch.randn(3, 4))
    sparse = torch.nn.Parameter(torch.randn(C, D))
    reference = torch.nn.Parameter(dense.detach().clone())
    lazy = LazySparseSGD([{"params": [dense]}, {"params": [sparse], "weight_decay": 0.0}],
                         lr=0.1, momentum=0.9, weight_decay=1e-2)
    sgd = torch.optim.SGD([reference], lr=0.1, momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        grad = torch.randn(3, 4)
        dense.grad, reference.grad = grad.clone(), grad.clone()
        sparse.grad = sparse_rows([1, 2], torch.randn(2, D))
        lazy.step()
        sgd.step()
        assert sparse.grad is not None and sparse.grad.is_sparse  # handed back after the step
    assert torch.equal(dense, reference)


def test_without_momentum_rows_take_a_plain_gradient_step():
    weight = torch.nn.Parameter(torch.zeros(C, D))
    values = torch.ones(2, D)
    weight.grad = sparse_rows([2, 5], values)
    LazySparseSGD([weight], lr=0.5, momentum=0.0).step()
    assert torch.equal(weight[[2, 5]], torch.full((2, D), -0.5))
    assert torch.count_nonzero(weight) == 2 * D


@pytest.mark.parametrize("option", [{"weight_decay": 1e-4}, {"nesterov": True}, {"dampening": 0.1}])
def test_unsupported_options_on_a_sparse_parameter_are_refused(option):
    weight = torch.nn.Parameter(torch.zeros(C, D))
    weight.grad = sparse_rows([0], torch.ones(1, D))
    with pytest.raises(ValueError, match="sparse parameter"):
        LazySparseSGD([weight], lr=0.1, momentum=0.9, **option).step()


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(3)
    grads = [(rows, torch.randn(len(rows), D)) for rows in ([0, 1], [1, 5], [5, 9], [0, 9])]
    weight = torch.nn.Parameter(torch.randn(C, D))
    start = weight.detach().clone()
    optimizer = LazySparseSGD([weight], lr=0.1, momentum=0.9)
    for rows, values in grads:
        weight.grad = sparse_rows(rows, values)
        optimizer.step()

    resumed = torch.nn.Parameter(start.clone())
    first = LazySparseSGD([resumed], lr=0.1, momentum=0.9)
    for rows, values in grads[:2]:
        resumed.grad = sparse_rows(rows, values)
        first.step()
    second = LazySparseSGD([resumed], lr=0.1, momentum=0.9)
    second.load_state_dict(first.state_dict())
    for rows, values in grads[2:]:
        resumed.grad = sparse_rows(rows, values)
        second.step()
    assert torch.equal(resumed, weight)

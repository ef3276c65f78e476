"""SGD with lazy momentum on sparse gradients, for class weights at very many classes.

With class subsampling (Zhai & Wu 2019, Sec. 4.5) a step's gradient covers only the K sampled
rows of the class weights W [C, D]. Exact momentum SGD still has to move every row that still
has velocity, so once every class has been sampled each step costs O(C x D) in the optimizer
alone, whatever K is (``benchmarks/bench_class_subsample.py``: 5.8 s per step at C = 1M, D =
512, r = 1% on one CPU core, against 0.12 s for the lazy form, which updates only the rows in
the gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class LazySparseSGD(torch.optim.SGD):
    """``torch.optim.SGD``, except that a parameter with a *sparse* gradient is updated lazily:
    only the rows R in its gradient change,

        v[R] <- mu v[R] + g[R],    w[R] <- w[R] - lr v[R],

    and the other rows keep their velocity without moving (the semantics of TensorFlow's
    ``sparse_apply_momentum``, which TF 1's MomentumOptimizer uses for sparse gradients). A
    step then costs O(K x D) for K rows. When every row is in every gradient this is exactly
    SGD; otherwise untouched rows skip the steps on which dense momentum would carry them along.

    Parameters with dense gradients are stepped by ``torch.optim.SGD`` itself. Sparse
    parameters need ``weight_decay = 0``, ``dampening = 0`` and no Nesterov momentum (the
    trainer already gives sparse class weights no weight decay).
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        hidden: list[tuple[Tensor, Tensor]] = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None and param.grad.is_sparse:
                    self._lazy_step(param, group)
                    hidden.append((param, param.grad))
                    param.grad = None  # so that SGD below leaves it alone
        try:
            super().step()
        finally:
            for param, grad in hidden:
                param.grad = grad
        return loss

    def _lazy_step(self, param: Tensor, group: dict) -> None:
        if group["weight_decay"] or group["dampening"] or group["nesterov"] or group["maximize"]:
            raise ValueError(
                "LazySparseSGD: a sparse parameter needs weight_decay=0, dampening=0, "
                "nesterov=False and maximize=False"
            )
        grad = param.grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        lr, momentum = group["lr"], group["momentum"]
        if momentum == 0:
            param.index_add_(0, rows, values, alpha=-lr)
            return
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param)
        velocity = state["momentum_buffer"]
        row_velocity = velocity.index_select(0, rows).mul_(momentum).add_(values)
        velocity.index_copy_(0, rows, row_velocity)
        param.index_add_(0, rows, row_velocity, alpha=-lr)

"""Batch normalisation over the global batch on CPU (``nn.SyncBatchNorm`` is CUDA-only).

In training mode the mean and then the (biased) variance, in two passes as BatchNorm computes
them, are sums over every rank's samples, reduced with the differentiable
``torch.distributed.nn.functional.all_reduce``, so outputs, gradients
and the running statistics (unbiased variance, as BatchNorm keeps) equal one BatchNorm on the
concatenated batch. Evaluation mode uses the running statistics, as BatchNorm does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from losszoo.distributed.losses import quiet_deprecation


class GlobalBatchNorm(_BatchNorm):
    """Drop-in for BatchNorm1d/2d/3d whose training statistics span all ranks."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        channels = input.shape[1]
        shape = [1, channels] + [1] * (input.dim() - 2)
        count = torch.tensor(float(input.numel() // channels), dtype=input.dtype, device=input.device)
        # Two passes, as BatchNorm computes them: the global mean, then the global sum of squared
        # deviations from it (E[x^2] - E[x]^2 in one pass loses digits to cancellation in float32).
        with quiet_deprecation():
            sums = dist_fn.all_reduce(torch.cat([input.sum(dims), count[None]]))
        total = sums[-1]
        mean = sums[:channels] / total
        centered = input - mean.view(shape)
        with quiet_deprecation():
            variance = dist_fn.all_reduce((centered * centered).sum(dims)) / total
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None \
                    else 1.0 / float(self.num_batches_tracked)
                unbiased = variance * total / (total - 1).clamp_min(1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        output = centered * torch.rsqrt(variance.view(shape) + self.eps)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``module`` synchronised across ranks: ``nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm` elsewhere (same parameters and buffers, so the same state dict)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum,
                                      module.affine, module.track_running_stats)
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        replacement.to(next(iter(module.state_dict().values())).device)
        if module.affine:
            replacement.weight, replacement.bias = module.weight, module.bias
        replacement.running_mean, replacement.running_var = module.running_mean, module.running_var
        replacement.num_batches_tracked = module.num_batches_tracked
        return replacement
    for name, child in module.named_children():
        new = _convert(child)
        if new is not child:
            setattr(module, name, new)
    return module

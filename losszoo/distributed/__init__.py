"""Scale-out on torch.distributed (launched by ``torchrun``): the process context, distributed
batch samplers, global-batch losses, sharded class weights and distributed evaluation.

A run without torchrun's environment is unchanged: world size 1 and no process group.
"""

from losszoo.distributed.context import DistContext, init_distributed, single_process
from losszoo.distributed.evaluation import distributed_embeddings
from losszoo.distributed.losses import GlobalBatch, gather_batch, synchronize_rng
from losszoo.distributed.sampler import DistributedBatchSampler, SeededItems
from losszoo.distributed.batchnorm import GlobalBatchNorm, convert_batchnorm

__all__ = [
    "DistContext", "init_distributed", "single_process", "distributed_embeddings", "GlobalBatch",
    "gather_batch", "synchronize_rng", "DistributedBatchSampler", "SeededItems",
    "GlobalBatchNorm", "convert_batchnorm",
]

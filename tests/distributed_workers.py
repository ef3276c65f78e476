"""Worker functions for tests/test_distributed.py: run in 2 spawned Gloo processes, each
checks its rank's results against the single-process computation on the concatenated batch
(computed in the same process) and returns a list of failure messages."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import TensorDataset

TOLERANCE = 1e-10
DIM, FEATURES, BATCH = 4, 6, 12


def run_worker(rank: int, world_size: int, init_file: str, check: Callable[[int, int], list[str]],
               results: dict) -> None:
    """Join the Gloo group through ``init_file``, run ``check``, report into ``results``."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size)
    try:
        results[rank] = check(rank, world_size)
    except Exception:  # the parent asserts on the message
        results[rank] = [traceback.format_exc()]
    finally:
        dist.destroy_process_group()


def _tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, DIM)).double()


def _batch(loss_name: str) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, FEATURES, generator=g, dtype=torch.float64)
    if loss_name == "npair":  # [a1, p1, a2, p2, ...] of 6 classes
        labels = torch.arange(BATCH // 2).repeat_interleave(2)
    else:  # 3 classes x 4, laid out as the class-balanced sampler lays them out
        labels = torch.arange(3).repeat_interleave(4)
    return x, labels


LOSS_CASES: list[tuple[str, dict]] = [
    ("contrastive", {}), ("triplet", {}), ("npair", {}), ("lifted", {}), ("margin", {}),
    ("normsoftmax", {}), ("normsoftmax", {"class_subsample": 0.5}), ("cosface", {}),
    ("proxynca", {}), ("proxyanchor", {}), ("multisimilarity", {"base": 0.5}), ("arcface", {}),
    ("supcon", {}),
]


def _grads(module: nn.Module) -> dict[str, Tensor]:
    out = {}
    for name, p in module.named_parameters():
        if p.grad is not None:
            out[name] = p.grad.to_dense() if p.grad.is_sparse else p.grad.clone()
    return out


def _compare(what: str, a: dict[str, Tensor], b: dict[str, Tensor], failures: list[str]) -> None:
    if a.keys() != b.keys():
        failures.append(f"{what}: gradients of {sorted(a)} vs {sorted(b)}")
        return
    for key in a:
        error = (a[key] - b[key]).abs().max().item()
        if error > TOLERANCE:
            failures.append(f"{what}: {key} differs by {error:.3g}")


def check_loss_steps(rank: int, world_size: int) -> list[str]:
    """Every zoo loss: loss value, model gradients (DDP, global BatchNorm), loss-parameter
    gradients and BatchNorm running statistics of a distributed step equal one process."""
    from losszoo.distributed import GlobalBatch, convert_batchnorm
    from losszoo.losses import create_loss, list_losses

    zoo = {name for name in list_losses() if ":" not in name}
    failures = [f"loss {name} untested" for name in zoo - {case[0] for case in LOSS_CASES}]
    share = BATCH // world_size
    for name, options in LOSS_CASES:
        x, labels = _batch(name)
        # One process on the whole batch.
        model = _tiny_model(0)
        torch.manual_seed(2)
        loss = create_loss(name, embedding_dim=DIM, num_classes=6, **options).double()
        torch.manual_seed(3)
        expected = loss(model(x), labels)
        expected.backward()
        expected_model, expected_loss = _grads(model), _grads(loss)
        # This rank's share, through DDP and the global-batch loss.
        model = convert_batchnorm(_tiny_model(0), torch.device("cpu"))
        ddp = nn.parallel.DistributedDataParallel(model)
        torch.manual_seed(2)
        loss = create_loss(name, embedding_dim=DIM, num_classes=6, **options).double()
        torch.manual_seed(3 + rank)  # rank 0's generator is the one that counts
        part = slice(rank * share, (rank + 1) * share)
        value = GlobalBatch(loss)(ddp(x[part]), labels[part])
        value.backward()
        what = f"{name}{options or ''}"
        if abs(value.item() - expected.item()) > TOLERANCE:
            failures.append(f"{what}: loss {value.item()} vs {expected.item()}")
        _compare(f"{what} model", _grads(model), expected_model, failures)
        _compare(f"{what} loss parameters", _grads(loss), expected_loss, failures)
        reference = _tiny_model(0)
        reference(x)
        for buffer in ("running_mean", "running_var"):
            error = (getattr(model[1], buffer) - getattr(reference[1], buffer)).abs().max().item()
            if error > TOLERANCE:
                failures.append(f"{what}: BatchNorm {buffer} differs by {error:.3g}")
    return failures


def check_samplers(rank: int, world_size: int) -> list[str]:
    """Every registered sampler: the ranks' shares of each step, concatenated in rank order,
    are the single-process batch; shares never overlap; item seeds agree across ranks."""
    from losszoo.distributed import DistributedBatchSampler
    from losszoo.samplers import create_sampler, list_samplers

    labels = np.repeat(np.arange(8), 5)
    failures = []
    for name in list_samplers():
        make = lambda: create_sampler(name, labels, batch_size=8, samples_per_class=4,  # noqa: E731
                                      seed=5, batches_per_epoch=6)
        single, distributed = make(), DistributedBatchSampler(make(), rank, world_size, seed=5)
        for epoch in (0, 3):
            single.set_epoch(epoch)
            distributed.set_epoch(epoch)
            mine = list(distributed)
            every: list = [None] * world_size
            dist.all_gather_object(every, mine)
            for step, batch in enumerate(single):
                union = [item for shares in every for item in shares[step]]
                if [index for index, _ in union] != list(batch):
                    failures.append(f"{name} epoch {epoch} step {step}: union != single batch")
                if len({seed for _, seed in union}) != len(union):
                    failures.append(f"{name} epoch {epoch} step {step}: item seeds repeat")
    return failures


def check_evaluation(rank: int, world_size: int) -> list[str]:
    """Distributed embedding (uneven batch shares) and every metric equal one process exactly."""
    from losszoo.training.inference import EvalData, evaluate_model, extract_embeddings

    g = torch.Generator().manual_seed(4)
    images = torch.randn(23, FEATURES, generator=g)
    labels = torch.arange(23) % 5
    model = _tiny_model(0).float()
    data = EvalData(TensorDataset(images, labels))
    distributed = evaluate_model(model, data, ks=(1, 2, 4), batch_size=5).metrics.to_dict()
    gallery = EvalData(TensorDataset(images[:9], labels[:9]), TensorDataset(images, labels))
    distributed_gallery = evaluate_model(model, gallery, ks=(1, 2), batch_size=4).metrics.to_dict()
    # The single-process reference, with no process group in the way.
    from losszoo.evaluation import evaluate

    failures = []
    query, query_labels = extract_embeddings(model, data.query, batch_size=5)
    from losszoo.distributed import distributed_embeddings

    shared, shared_labels = distributed_embeddings(
        lambda d: extract_embeddings(model, d, batch_size=5), data.query, 5)
    if not (torch.equal(shared, query) and torch.equal(shared_labels, query_labels)):
        failures.append("distributed embeddings differ from one process's")
    expected = evaluate(query, query_labels, ks=(1, 2, 4))
    expected.update({f"binary/{k}": v for k, v in evaluate(
        query, query_labels, ks=(1, 2, 4), binary=True,
        metrics=("recall", "map_at_r", "r_precision")).items()})
    if distributed != expected:
        failures.append(f"metrics {distributed} != {expected}")
    g_query, g_labels = extract_embeddings(model, gallery.query, batch_size=4)
    g_all, g_all_labels = extract_embeddings(model, gallery.gallery, batch_size=4)
    expected_gallery = evaluate(g_query, g_labels, gallery_embeddings=g_all,
                                gallery_labels=g_all_labels, ks=(1, 2))
    for key, value in expected_gallery.items():
        if distributed_gallery[key] != value:
            failures.append(f"query/gallery {key}: {distributed_gallery[key]} != {value}")
    return failures


def check_all(rank: int, world_size: int) -> list[str]:
    """Every check in one spawn (spawning is the slow part)."""
    failures = []
    for check in (check_samplers, check_loss_steps, check_evaluation, *EXTRA_CHECKS):
        failures += [f"rank {rank} {check.__name__}: {f}" for f in check(rank, world_size)]
    return failures


def check_sharded_class_weights(rank: int, world_size: int) -> list[str]:
    """Sharded class weights equal replicated ones: loss, model gradients, each shard's rows'
    gradients, and the rows after an SGD step with momentum and weight decay (twice)."""
    from losszoo.distributed import GlobalBatch, convert_batchnorm
    from losszoo.distributed.sharded import ShardedClassLoss
    from losszoo.losses import create_loss

    failures = []
    share = BATCH // world_size
    part = slice(rank * share, (rank + 1) * share)
    cases = [("normsoftmax", {}), ("cosface", {}), ("proxynca", {}),
             ("proxynca", {"include_positive": True}), ("arcface", {}), ("proxyanchor", {})]
    for name, options in cases:
        x, labels = _batch(name)
        runs = {}
        for mode in ("replicated", "sharded"):
            model = convert_batchnorm(_tiny_model(0), torch.device("cpu"))
            ddp = nn.parallel.DistributedDataParallel(model)
            torch.manual_seed(2)
            loss = create_loss(name, embedding_dim=DIM, num_classes=7, **options).double()
            step_loss = GlobalBatch(loss) if mode == "replicated" else ShardedClassLoss(loss, rank, world_size)
            weight = loss.proxies.weight if mode == "replicated" else step_loss.weight
            optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9, weight_decay=0.01)
            values = []
            for _ in range(2):
                optimizer.zero_grad()
                value = step_loss(ddp(x[part]), labels[part])
                value.backward()
                values.append(value.item())
                grad = weight.grad.clone()
                optimizer.step()
            rows = weight.detach() if mode == "replicated" else step_loss.full_weight()
            runs[mode] = (values, _grads(model), grad, rows, step_loss)
        what = f"sharded {name}{options or ''}"
        (v_rep, g_rep, w_grad_rep, rows_rep, _), (v_sh, g_sh, w_grad_sh, rows_sh, sharded) = \
            runs["replicated"], runs["sharded"]
        if max(abs(a - b) for a, b in zip(v_rep, v_sh)) > TOLERANCE:
            failures.append(f"{what}: losses {v_sh} vs {v_rep}")
        _compare(f"{what} model", g_sh, g_rep, failures)
        error = (w_grad_sh - w_grad_rep[sharded.start:sharded.stop]).abs().max().item()
        if error > TOLERANCE:
            failures.append(f"{what}: shard gradient differs by {error:.3g}")
        error = (rows_sh - rows_rep).abs().max().item()
        if error > TOLERANCE:
            failures.append(f"{what}: rows after two SGD steps differ by {error:.3g}")
    # Class subsampling per shard: sparse shard gradients, finite loss.
    x, labels = _batch("normsoftmax")
    loss = create_loss("normsoftmax", embedding_dim=DIM, num_classes=40, class_subsample=0.25).double()
    sharded = ShardedClassLoss(loss, rank, world_size)
    value = sharded(x[part, :DIM].clone().requires_grad_(), labels[part])
    value.backward()
    if not (torch.isfinite(value) and sharded.weight.grad.is_sparse):
        failures.append("subsampled shard: expected a finite loss and a sparse shard gradient")
    return failures


def check_cross_batch_memory(rank: int, world_size: int) -> list[str]:
    """A cross-batch memory under the global batch: three steps (the memory wraps) give the loss
    and model gradients of one process on the concatenated batches, and every rank ends with
    one process's memory, hence the same memory on every rank."""
    from losszoo.distributed import GlobalBatch, convert_batchnorm
    from losszoo.losses import create_loss
    from losszoo.losses.xbm import CrossBatchMemory

    failures = []
    share = BATCH // world_size
    part = slice(rank * share, (rank + 1) * share)
    g = torch.Generator().manual_seed(5)
    steps = [(torch.randn(BATCH, FEATURES, generator=g, dtype=torch.float64),
              torch.randperm(4, generator=g)[:3].repeat_interleave(4)) for _ in range(3)]
    for name, options in (("multisimilarity", {"base": 0.5}), ("supcon", {}), ("contrastive", {}),
                          ("triplet", {})):
        single_model = _tiny_model(0)
        single = CrossBatchMemory(create_loss(name, embedding_dim=DIM, **options), DIM, 30).double()
        model = convert_batchnorm(_tiny_model(0), torch.device("cpu"))
        ddp = nn.parallel.DistributedDataParallel(model)
        memory = CrossBatchMemory(create_loss(name, embedding_dim=DIM, **options), DIM, 30).double()
        distributed = GlobalBatch(memory)
        for step, (x, labels) in enumerate(steps):
            single_model.zero_grad(), model.zero_grad()
            expected = single(single_model(x), labels)
            expected.backward()
            value = distributed(ddp(x[part]), labels[part])
            value.backward()
            what = f"xbm {name} step {step}"
            if abs(value.item() - expected.item()) > TOLERANCE:
                failures.append(f"{what}: loss {value.item()} vs {expected.item()}")
            _compare(f"{what} model", _grads(model), _grads(single_model), failures)
        # Against one process: equal up to the model's rounding (global BatchNorm sums
        # differently); across ranks: bitwise.
        for key, buffer in single.state_dict().items():
            ours = memory.state_dict()[key]
            if ours.dtype.is_floating_point:
                if (ours - buffer).abs().max().item() > TOLERANCE:
                    failures.append(f"xbm {name}: {key} differs from one process's")
            elif not torch.equal(ours, buffer):
                failures.append(f"xbm {name}: {key} differs from one process's")
            copies = [torch.empty_like(ours) for _ in range(world_size)]
            dist.all_gather(copies, ours.contiguous())
            if not all(torch.equal(copy, ours) for copy in copies):
                failures.append(f"xbm {name}: {key} differs between ranks")
    return failures


def check_per_rank_loss_gradients(rank: int, world_size: int) -> list[str]:
    """A loss computed per rank (``global_batch=False``), as the trainer's replicated strategy
    runs it: the step calls the loss itself (no gather), and after backward every rank holds
    the mean over ranks of each share's gradient of the loss's own parameters (as DDP averages
    the model's), computed here in one process share by share; and the same on every rank, so
    the replicated parameters stay equal. A global-batch loss is wrapped in GlobalBatch."""
    from losszoo.distributed import DistContext, GlobalBatch
    from losszoo.losses import create_loss
    from losszoo.training.strategy import Replicated

    failures = []
    share = BATCH // world_size
    x, labels = _batch("proxynca")
    embeddings = x[:, :DIM]

    def fresh() -> nn.Module:
        torch.manual_seed(2)
        return create_loss("proxynca", embedding_dim=DIM, num_classes=6).double()

    expected = None
    for other in range(world_size):  # every share in this process: their mean is the target
        loss = fresh()
        part = slice(other * share, (other + 1) * share)
        loss(embeddings[part], labels[part]).backward()
        grads = _grads(loss)
        expected = grads if expected is None else {k: expected[k] + grads[k] for k in grads}
    expected = {k: v / world_size for k, v in expected.items()}
    strategy = Replicated(DistContext(rank=rank, world_size=world_size), torch.device("cpu"))
    loss, step_loss = strategy.prepare_loss(fresh(), fresh(), global_batch=True)
    if not isinstance(step_loss, GlobalBatch):
        failures.append("a global-batch loss is not gathered by the replicated strategy")
    strategy = Replicated(DistContext(rank=rank, world_size=world_size), torch.device("cpu"))
    loss = fresh()
    loss, step_loss = strategy.prepare_loss(loss, loss, global_batch=False)
    part = slice(rank * share, (rank + 1) * share)
    step_loss(embeddings[part], labels[part]).backward()
    own = _grads(loss)
    strategy.after_backward(loss)
    _compare("per-rank proxynca averaged gradients", _grads(loss), expected, failures)
    if all(torch.equal(own[k], expected[k]) for k in own):
        failures.append("per-rank gradients equal their mean before averaging: the shares do not differ")
    return failures


EXTRA_CHECKS: list[Callable[[int, int], list[str]]] = [check_sharded_class_weights, check_cross_batch_memory,
                                                       check_per_rank_loss_gradients]



def train_as_rank(rank: int, world_size: int, *, config: dict, output: str) -> list[str]:
    """``losszoo.training.train`` as one of ``world_size`` ranks, as torchrun would start it
    (its environment variables; the test's Gloo group stands for the one torchrun makes)."""
    import os

    from losszoo.training.config import TrainConfig
    from losszoo.training.trainer import train

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    train(TrainConfig.from_dict(config), output, progress=False)
    return []

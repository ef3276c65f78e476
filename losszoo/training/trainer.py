"""One trainer for every loss. The loss's spec supplies its sampler and its parameter group;
everything else (backbone, dim, optimizer, schedule, augmentation, batch size, seed) comes
from the shared :class:`TrainConfig`, so losses are compared under identical conditions.

Schedule (Zhai & Wu 2019, Sec. 4.1): ``warmup_epochs`` on new parameters only (the embedding
head and the loss's own parameters), then SGD on everything with step decay.

Reproducibility: every epoch reseeds from (seed, epoch), and a checkpoint is written
atomically after each epoch, so ``resume=True`` after an interruption (``kill -9`` included)
reaches the same result as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset

from losszoo.data import first_classes, get_dataset_spec, load_split
from losszoo.losses import create_loss, get_loss_spec
from losszoo.models import InputSpec, create_model
from losszoo.samplers import SAMPLERS, create_sampler
from losszoo.training.checkpoint import load_checkpoint, save_checkpoint, write_json
from losszoo.training.config import TrainConfig
from losszoo.training.inference import EvalData, evaluate_model, resolve_device
from losszoo.training.optim import LazySparseSGD

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
PROGRESS_EVERY = 10  # batches between progress-bar updates
# From this many subsampled classes on, exact momentum SGD's O(C x D) step dominates (at 1M
# classes, 46x a full-softmax step at 10k: benchmarks/bench_class_subsample.py), so the trainer
# suggests --lazy-momentum.
LAZY_MOMENTUM_HINT_CLASSES = 100_000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Run:
    """Everything a run builds from its config."""

    config: TrainConfig
    model: nn.Module
    loss: nn.Module
    loader: DataLoader
    eval_data: EvalData
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None  # float16 only: bfloat16 needs no loss scaling
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    next_epoch: int = 0


def build_model(config: TrainConfig, device: torch.device) -> nn.Module:
    seed_everything(config.seed)
    return create_model(config.backbone, config.dim, pretrained=config.pretrained).to(device)


def check_names(config: TrainConfig) -> None:
    """Fail fast on an unknown loss, sampler or dataset, before any model or data is built."""
    get_loss_spec(config.loss)
    get_dataset_spec(config.dataset)
    if config.sampler is not None:
        SAMPLERS.get(config.sampler)


def build_run(config: TrainConfig) -> Run:
    """Model, loss, data, sampler and optimizer for ``config``, seeded."""
    check_names(config)
    device = resolve_device(config.device)
    model = build_model(config, device)
    train_set = load_train_data(config, model)
    eval_data = load_eval_data(config, model)
    spec = get_loss_spec(config.loss)
    loss = create_loss(spec.name, embedding_dim=config.dim, num_classes=train_set.num_classes,
                       **config.loss_options).to(device)
    sampler = create_sampler(
        config.sampler or spec.sampler, train_set.labels, batch_size=config.batch_size,
        samples_per_class=config.samples_per_class, seed=config.seed,
        batches_per_epoch=config.batches_per_epoch,
    )
    # No persistent workers: each epoch's workers are seeded from the epoch's reseeded RNG, so
    # augmentation, and hence a resumed run, depends on (seed, epoch) only.
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers,
                        pin_memory=device.type == "cuda")
    optimizer_class = LazySparseSGD if config.lazy_momentum else torch.optim.SGD
    optimizer = optimizer_class(
        param_groups(model, loss, config, spec.lr_multiplier),
        lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
    dtype = amp_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return Run(config, model, loss, loader, eval_data, optimizer, scheduler, device, dtype, scaler)


def input_spec(config: TrainConfig, model: nn.Module) -> InputSpec:
    """The model's input spec, with the crop size (and proportionally the resize) overridden
    by ``config.image_size`` when set."""
    spec = model.input_spec
    if config.image_size is None or config.image_size == spec.image_size:
        return spec
    resize = round(spec.resize * config.image_size / spec.image_size)
    return replace(spec, image_size=config.image_size, resize=resize)


def _load(config: TrainConfig, model: nn.Module, split: str, train: bool) -> Dataset:
    dataset = load_split(config.dataset, split, root=config.data_root,
                         input_spec=input_spec(config, model), train=train)
    return first_classes(dataset, config.max_classes) if config.max_classes else dataset


def load_train_data(config: TrainConfig, model: nn.Module) -> Dataset:
    return _load(config, model, "train", train=True)


def load_eval_data(config: TrainConfig, model: nn.Module) -> EvalData:
    """In-Shop retrieves queries from a gallery; the other datasets search their test set."""
    splits = ("query", "gallery") if config.dataset == "inshop" else ("test",)
    return EvalData(*(_load(config, model, split, train=False) for split in splits))


def param_groups(model: nn.Module, loss: nn.Module, config: TrainConfig,
                 loss_lr_multiplier: float) -> list[dict[str, Any]]:
    """Backbone, new head, and the loss's own parameters (class weights, proxies, betas).

    Parameters with sparse gradients (subsampled class weights) get no weight decay, which
    SGD cannot apply to a sparse gradient; see ``MetricLoss.sparse_gradients``.
    """
    groups = [
        {"name": "backbone", "params": list(model.pretrained_parameters())},
        {"name": "head", "params": list(model.new_parameters())},
    ]
    loss_params = list(loss.parameters())
    if loss_params:
        group = {"name": "loss", "params": loss_params, "lr": config.lr * loss_lr_multiplier}
        if getattr(loss, "sparse_gradients", False):
            group["weight_decay"] = 0.0
        groups.append(group)
    return [g for g in groups if g["params"]]


def _set_warmup(run: Run, warm: bool) -> None:
    """During warm-up only new parameters train; the pretrained backbone (and its BatchNorm
    statistics) stays as it is."""
    for p in run.model.pretrained_parameters():
        p.requires_grad_(not warm)
    run.model.train()
    run.loss.train()
    if warm:
        run.model.backbone.eval()


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Mixed precision on CUDA only: bfloat16 where supported, else float16 (with loss scaling)."""
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def _state(run: Run) -> dict[str, Any]:
    return {
        "config": run.config.to_dict(),
        "fingerprint": run.config.fingerprint(),
        "next_epoch": run.next_epoch,
        "model": run.model.state_dict(),
        "loss": run.loss.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "history": run.history,
        "train_seconds": run.train_seconds,
    }


def _restore(run: Run, state: dict[str, Any], path: Path) -> None:
    if state["fingerprint"] != run.config.fingerprint():
        raise ValueError(
            f"{path} was written by a run with different settings; use another output "
            "folder, or delete the checkpoint to start over"
        )
    run.model.load_state_dict(state["model"])
    run.loss.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.history, run.train_seconds = state["history"], state["train_seconds"]
    run.next_epoch = state["next_epoch"]


def train(
    config: TrainConfig, output_dir: str | Path, *, resume: bool = False,
    progress: bool = True, console: Console | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``output_dir`` and return its result record (also in result.json).

    With ``resume``, continue from ``output_dir/checkpoint.pt`` when there is one.
    """
    output_dir = Path(output_dir)
    console = console or Console(stderr=True)
    run = build_run(config)
    if getattr(run.loss, "sparse_gradients", False) and not config.lazy_momentum \
            and getattr(run.loss, "num_classes", 0) >= LAZY_MOMENTUM_HINT_CLASSES:
        console.log(f"hint: with {run.loss.num_classes:,} subsampled classes, exact momentum SGD "
                    "updates every class weight each step; --lazy-momentum updates only the "
                    "sampled rows (see docs/performance.md)")
    checkpoint = output_dir / CHECKPOINT
    if resume and checkpoint.exists():
        _restore(run, load_checkpoint(checkpoint), checkpoint)
        console.log(f"resuming {config.loss} from epoch {run.next_epoch} ({checkpoint})")
    elif checkpoint.exists():
        raise FileExistsError(f"{checkpoint} exists: pass resume=True (--resume) or use another folder")

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.0f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        epochs_task = bar.add_task(f"{config.loss} epochs", total=config.total_epochs,
                                   completed=run.next_epoch, loss=float("nan"), rate=0.0)
        while run.next_epoch < config.total_epochs:
            epoch = run.next_epoch
            mean_loss = _train_epoch(run, epoch, bar)
            run.next_epoch = epoch + 1
            record: dict[str, Any] = {"epoch": run.next_epoch, "loss": mean_loss}
            main_epochs_done = run.next_epoch - config.warmup_epochs
            if config.eval_every and main_epochs_done > 0 and main_epochs_done % config.eval_every == 0 \
                    and run.next_epoch < config.total_epochs:
                record["metrics"] = _evaluate(run)
                console.log(_format_eval(config.loss, run.next_epoch, record["metrics"], config.ks))
            run.history.append(record)
            save_checkpoint(checkpoint, **_state(run))
            bar.update(epochs_task, completed=run.next_epoch, loss=mean_loss)

    metrics = _evaluate(run)
    console.log(_format_eval(config.loss, run.next_epoch, metrics, config.ks))
    result = {
        "loss": config.loss,
        "seed": config.seed,
        "config": config.to_dict(),
        "fingerprint": config.fingerprint(),
        "metrics": metrics,
        "history": run.history,
        "train_seconds": run.train_seconds,
    }
    write_json(output_dir / RESULT, result)
    return result


def _train_epoch(run: Run, epoch: int, bar: Progress) -> float:
    config = run.config
    seed_everything(config.seed * 100_003 + epoch)  # depends on (seed, epoch) only
    warm = epoch < config.warmup_epochs
    _set_warmup(run, warm)
    run.loader.batch_sampler.set_epoch(epoch)
    task = bar.add_task(f"epoch {epoch + 1}/{config.total_epochs}" + (" (warm-up)" if warm else ""),
                        total=len(run.loader), loss=float("nan"), rate=0.0)
    # The running loss stays on the device; reading it (a GPU sync) only every few batches.
    total_loss = torch.zeros((), device=run.device)
    seen, start = 0, time.perf_counter()
    for step, (images, labels) in enumerate(run.loader, 1):
        images = images.to(run.device, non_blocking=True)
        labels = labels.to(run.device, non_blocking=True)
        with _autocast(run.amp_dtype):
            embeddings = run.model(images)
        value = run.loss(embeddings.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is None:
            value.backward()
            run.optimizer.step()
        else:
            run.scaler.scale(value).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
        total_loss += value.detach() * len(labels)
        seen += len(labels)
        if step % PROGRESS_EVERY == 0 or step == len(run.loader):
            elapsed = time.perf_counter() - start
            bar.update(task, completed=step, loss=total_loss.item() / seen,
                       rate=seen / max(elapsed, 1e-9))
    bar.remove_task(task)
    run.train_seconds += time.perf_counter() - start
    if not warm:
        run.scheduler.step()
    return total_loss.item() / max(seen, 1)


def _evaluate(run: Run) -> dict[str, Any]:
    return evaluate_model(run.model, run.eval_data, ks=run.config.ks, binary=run.config.binary,
                          workers=run.config.workers, seed=run.config.seed)


def _format_eval(loss: str, epoch: int, metrics: dict[str, Any], ks: tuple[int, ...]) -> str:
    recalls = " ".join(f"R@{k} {100 * metrics[f'recall@{k}']:.1f}" for k in ks)
    line = f"{loss} epoch {epoch}: {recalls} NMI {100 * metrics['nmi']:.1f} MAP@R {100 * metrics['map_at_r']:.1f}"
    if "binary/recall@1" in metrics:
        line += f" | binary R@1 {100 * metrics['binary/recall@1']:.1f}"
    return line

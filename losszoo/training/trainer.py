"""One trainer for every loss. The loss's spec supplies its sampler and its parameter group;
everything else (backbone, dim, optimizer, schedule, augmentation, batch size, seed) comes
from the shared :class:`TrainConfig`, so losses are compared under identical conditions.

Schedule (Zhai & Wu 2019, Sec. 4.1): ``warmup_epochs`` on new parameters only (the embedding
head and the loss's own parameters), then SGD on everything with step decay.

Reproducibility: every item's augmentation is seeded by (seed, epoch, step, position in the
global batch), in one process as under torchrun; every epoch reseeds the rest (a loss's own
random draws) from (seed, epoch); and a checkpoint is written atomically after each epoch, so
``resume=True`` after an interruption (``kill -9`` included) reaches the same result as an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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

from losszoo import runtime
from losszoo.distributed import DistContext, DistributedBatchSampler, SeededItems, init_distributed
from losszoo.errors import OutputError
from losszoo.evaluation.results import EvaluationResult
from losszoo.samplers import create_sampler
from losszoo.training.callbacks import Callback, with_test_callbacks
from losszoo.training.checkpoint import load_checkpoint, output_lock, save_checkpoint
from losszoo.training.config import TrainConfig
from losszoo.training.divergence import DivergenceGuard
from losszoo.training.inference import EvalArrays, EvalData
from losszoo.training.logs import RunLog, require_tensorboard
from losszoo.training.optim import LazySparseSGD
from losszoo.training.mining import MinedLoss
from losszoo.training.progress import Every, epoch_line
from losszoo.training.provenance import provenance, utc_now
from losszoo.training.records import EpochRecord, RunRecord, write_record
from losszoo.training.strategy import SingleProcess, choose_strategy
from losszoo.training.plan import (
    RunPlan,
    build_loss,
    build_model,
    evaluate,
    final_test_data,
    input_spec,
    plan_run,
    seed_everything,
    train_dataset,
    validation_data,
)

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
# After this many batches of a run's first epoch, an epoch estimated at over ESTIMATE_FROM_S
# seconds is announced (e.g. resnet50 on a CPU), so a long run never starts in silence.
ESTIMATE_AFTER, ESTIMATE_FROM_S = 3, 60.0
# From this many subsampled classes on, exact momentum SGD's O(C x D) step dominates (at 1M
# classes, 46x a full-softmax step at 10k: benchmarks/bench_class_subsample.py), so the trainer
# suggests --lazy-momentum.
LAZY_MOMENTUM_HINT_CLASSES = 100_000


@dataclass
class Run:
    """Everything a run builds from its plan."""

    plan: RunPlan
    model: nn.Module
    loss: nn.Module
    loader: DataLoader
    validation: EvalData | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None  # float16 only: bfloat16 needs no loss scaling
    history: list[EpochRecord] = field(default_factory=list)
    train_seconds: float = 0.0
    first_epoch: int = 0  # the first epoch this process trains (after a resume: the next one)
    next_epoch: int = 0
    context: DistContext = field(default_factory=DistContext)
    strategy: SingleProcess | None = None  # single / replicated / sharded (training/strategy.py)
    step_loss: nn.Module | None = None  # the loss as a step calls it (on the global batch)
    forward_model: nn.Module | None = None  # the model as a step calls it (DDP under torchrun)

    @property
    def config(self) -> TrainConfig:
        return self.plan.config


def build_run(plan: RunPlan, context: DistContext | None = None) -> Run:
    """Model, loss, data, sampler and optimizer of ``plan``, seeded. The run's distributed
    strategy (single process, replicated or sharded: :mod:`losszoo.training.strategy`) is chosen
    here, once; under torchrun each rank loads its share of every global batch and the strategy
    makes a step equal one process's step on the global batch."""
    config, device = plan.config, plan.device
    context = context or DistContext()
    runtime.size_threads_for_run(config.workers)
    model = build_model(plan)
    train_set = train_dataset(plan, model)
    loss = build_loss(plan, train_set.num_classes)
    sampler = create_sampler(
        plan.sampler, train_set.labels, batch_size=config.batch_size,
        samples_per_class=config.samples_per_class, seed=config.seed,
        batches_per_epoch=config.batches_per_epoch,
    )
    strategy = choose_strategy(config.shard_class_weights, context, device)  # the one choice
    loss, step_loss = strategy.prepare_loss(
        loss, loss if plan.miner is None else MinedLoss(loss, plan.miner), plan.loss.global_batch)
    # One run path: every run (one process or many) loads its share of each global batch and
    # augments each item under a seed of (seed, epoch, step, position in the global batch), so
    # `losszoo train` equals `torchrun --nproc-per-node N -m losszoo train` on the same batch.
    sampler = DistributedBatchSampler(sampler, context.rank, context.world_size, seed=config.seed)
    train_set = SeededItems(train_set)
    model = strategy.prepare_model(model)
    # No persistent workers: whatever else a worker draws is seeded from the epoch's reseeded
    # RNG, so a resumed run depends on (seed, epoch) only.
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers,
                        pin_memory=device.type == "cuda")
    optimizer_class = LazySparseSGD if config.lazy_momentum else torch.optim.SGD
    optimizer = optimizer_class(
        param_groups(model, loss, config, plan.loss.lr_multiplier),
        lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
    dtype = amp_dtype(device, config.amp, cpu_bf16=config.cpu_bf16)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return Run(plan=plan, model=model, loss=loss, loader=loader, validation=validation_data(plan, model),
               optimizer=optimizer, scheduler=scheduler, device=device, amp_dtype=dtype, scaler=scaler,
               context=context, strategy=strategy, step_loss=step_loss, forward_model=model)


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
    statistics) stays as it is. With ``freeze_bn_stats`` its BatchNorm statistics stay after it too."""
    for p in run.model.pretrained_parameters():
        p.requires_grad_(not warm)
    run.model.train()
    run.loss.train()
    if warm:
        run.model.backbone.eval()
    elif run.config.freeze_bn_stats:
        for module in run.model.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    run.forward_model = run.strategy.forward_model(run.model, warm, run.forward_model)


def amp_dtype(device: torch.device, enabled: bool, *, cpu_bf16: bool = False) -> torch.dtype | None:
    """Mixed precision: on CUDA bfloat16 where supported, else float16 (with loss scaling); on
    a CPU bfloat16 only when asked (``cpu_bf16``) and the CPU computes it natively (AMX or
    AVX512-BF16), elsewhere it is slower than float32."""
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16 and runtime.native_bf16() else None
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _state(run: Run) -> dict[str, Any]:
    """The checkpoint's contents. Sharded class weights (and their momentum) are gathered into
    the replicated layout, so every rank must call this; rank 0 writes it."""
    loss_state, optimizer_state = run.strategy.loss_state(run.loss, run.optimizer)
    return {
        "config": run.config.to_dict(),
        "fingerprint": run.plan.fingerprint(),
        "next_epoch": run.next_epoch,
        "model": run.model.state_dict(),
        "loss": loss_state,
        "optimizer": optimizer_state,
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "history": [entry.to_dict() for entry in run.history],
        "train_seconds": run.train_seconds,
    }


def _restore(run: Run, state: dict[str, Any], path: Path) -> None:
    run.model.load_state_dict(state["model"])
    run.strategy.load_loss_state(run.loss, run.optimizer, state)
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.history = [EpochRecord.from_dict(entry) for entry in state["history"]]
    run.train_seconds = state["train_seconds"]
    run.next_epoch = run.first_epoch = state["next_epoch"]


def check_output(plan: RunPlan, output_dir: Path, *, resume: bool) -> dict[str, Any] | None:
    """Read-only checks of ``output_dir`` before anything is built or written; the checkpoint
    to resume from, if any. A checkpoint of other settings is refused, naming its path."""
    checkpoint = output_dir / CHECKPOINT
    if not checkpoint.exists():
        return None
    if not resume:
        raise OutputError(f"{checkpoint} exists: pass resume=True (--resume) or use another folder")
    state = load_checkpoint(checkpoint)
    if state.get("fingerprint") != plan.fingerprint():
        raise OutputError(
            f"{checkpoint} was written by a run with different settings; use another output "
            "folder, or delete the checkpoint to start over"
        )
    return state


# Called after each validation with (epoch, validation metrics); may raise to stop the run
# (a tuner's pruning).
ValidationCallback = Callable[[int, EvaluationResult], None]
# Called (rank 0) with the final test evaluation's arrays (embeddings, neighbours) and its data.
TestCallback = Callable[[EvalArrays, EvalData], None]


@dataclass
class Session:
    """How one call of :func:`train` reports and writes (what a run builds is :class:`Run`):
    its output folder, console and progress bars, the caller's callbacks, and the logs (rank 0).
    A new hook of a training session (e.g. a callback) belongs here."""

    output_dir: Path
    console: Console
    progress: bool = True
    on_validation: ValidationCallback | None = None
    on_test: TestCallback | None = None
    tensorboard: bool = False
    callbacks: Sequence[Callback] = ()  # losszoo.training.callbacks: told of every step, epoch, evaluation
    log: RunLog | None = None
    started: str = ""

    @property
    def checkpoint(self) -> Path:
        return self.output_dir / CHECKPOINT


def train(
    config: TrainConfig | RunPlan, output_dir: str | Path, *, resume: bool = False,
    progress: bool = True, console: Console | None = None,
    on_validation: ValidationCallback | None = None, tensorboard: bool = False,
    on_test: TestCallback | None = None, callbacks: Sequence[Callback] = (),
) -> RunRecord:
    """Train ``config`` (or its plan) into ``output_dir``; return its result record (a
    :class:`~losszoo.training.records.RunRecord`, also in result.json). ``callbacks``
    (:mod:`losszoo.training.callbacks`) hear of every step, epoch and evaluation.

    Under protocols ``"holdout"`` and ``"tune"`` the validation classes are evaluated every
    ``eval_every`` epochs and at the end (``record.validation``, and per epoch in
    ``record.history``); the test split is evaluated once, after training
    (``record.metrics``; None under ``"tune"``). With ``resume``, continue from
    ``output_dir/checkpoint.pt`` when there is one. Every run writes log.csv and history.csv
    (:mod:`losszoo.training.logs`); ``tensorboard`` adds TensorBoard event files. ``on_test``
    receives the test embeddings and neighbours (e.g. to save them, see ``compare``).
    """
    plan = config if isinstance(config, RunPlan) else plan_run(config)
    context = init_distributed()  # torchrun's rank and world size; else one process
    session = Session(Path(output_dir), console or Console(stderr=True), progress, on_validation,
                      with_test_callbacks(on_test, callbacks), tensorboard, callbacks=tuple(callbacks))
    if not context.is_main:  # only rank 0 prints and writes
        session.console, session.progress = Console(quiet=True), False
    if tensorboard:
        require_tensorboard()
    state = check_output(plan, session.output_dir, resume=resume)
    for note in plan.notes:
        session.console.log(f"note: {note}")
    with output_lock(session.output_dir) if context.is_main else contextlib.nullcontext():
        session.started = utc_now()
        return _train(build_run(plan, context), session, state)


def _train(run: Run, session: Session, state: dict[str, Any] | None) -> RunRecord:
    plan, config, context, console = run.plan, run.config, run.context, session.console
    if getattr(run.loss, "sparse_gradients", False) and not config.lazy_momentum \
            and getattr(run.loss, "num_classes", 0) >= LAZY_MOMENTUM_HINT_CLASSES:
        console.log(f"hint: with {run.loss.num_classes:,} subsampled classes, exact momentum SGD "
                    "updates every class weight each step; --lazy-momentum updates only the "
                    "sampled rows (see docs/performance.md)")
    if config.cpu_bf16 and run.device.type == "cpu" and run.amp_dtype is None:
        console.log("note: cpu_bf16 asked for, but this CPU has neither AMX nor AVX512-BF16 "
                    "(bfloat16 would be slower than float32 here): training in float32")
    channels = (plan.dataset.input_spec.channels, input_spec(plan, run.model).channels)
    if channels[0] != channels[1]:
        console.log(f"note: {plan.dataset.name} images have {channels[0]} channel(s) and "
                    f"{config.backbone} takes {channels[1]}: they are converted "
                    f"({'to grey' if channels[1] == 1 else 'grey to 3 equal channels'})")
    if state is not None:
        _restore(run, state, session.checkpoint)
        console.log(f"resuming {config.loss} from epoch {run.next_epoch} ({session.checkpoint})")
    if context.is_main:  # rows beyond the checkpoint (an interrupted epoch) are dropped
        session.log = RunLog(session.output_dir,
                             [g.get("name", str(i)) for i, g in enumerate(run.optimizer.param_groups)],
                             epochs_done=run.next_epoch, tensorboard=session.tensorboard,
                             callbacks=session.callbacks, config=config.to_dict())
        session.log.history(run.history)
    try:
        return _train_loop(run, session)
    finally:
        if session.log is not None:
            session.log.close()


def _train_loop(run: Run, session: Session) -> RunRecord:
    plan, config, context, console, log = run.plan, run.config, run.context, session.console, session.log

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.0f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not session.progress, transient=True) as bar:
        epochs_task = bar.add_task(f"{config.loss} epochs", total=config.total_epochs,
                                   completed=run.next_epoch, loss=float("nan"), rate=0.0)
        while run.next_epoch < config.total_epochs:
            epoch, before = run.next_epoch, run.train_seconds
            mean_loss = _train_epoch(run, epoch, bar, log)
            run.next_epoch = epoch + 1
            if session.progress and not console.is_terminal:  # no bars drawn: one line per epoch
                _log_epoch(run, console, mean_loss, run.train_seconds - before)
            record = EpochRecord(run.next_epoch, mean_loss)
            main_epochs_done = run.next_epoch - config.warmup_epochs
            if run.validation is not None and config.eval_every and main_epochs_done > 0 \
                    and main_epochs_done % config.eval_every == 0 and run.next_epoch < config.total_epochs:
                record = replace(record, validation=_validate(run, session))
            run.history.append(record)
            state = _state(run)  # a collective when class weights are sharded
            if context.is_main:
                save_checkpoint(session.checkpoint, **state)
                log.history(run.history)
                log.epoch(record)
            bar.update(epochs_task, completed=run.next_epoch, loss=mean_loss)

    validation = None
    if run.validation is not None:
        validation = _validate(run, session)
        if run.history and run.history[-1].validation is None:
            run.history[-1] = replace(run.history[-1], validation=validation)
    test = final_test_data(plan, run.model)
    metrics = None
    if test is not None:
        keep = session.on_test is not None and context.is_main
        evaluation = evaluate(plan, run.model, test, keep=keep, console=console)
        metrics = evaluation.metrics
        if keep:
            session.on_test(evaluation.arrays, test)
        console.log(_format_eval(f"{config.loss} test", run.next_epoch, metrics, config.ks))
        if log is not None:
            log.evaluation(run.next_epoch, "test", metrics)
    if log is not None:
        log.history(run.history, None if metrics is None else (run.next_epoch, metrics))
    result = RunRecord.of_plan(
        plan, metrics=metrics, validation=validation, history=tuple(run.history), train_seconds=run.train_seconds,
        # Not in the fingerprint: the same settings on another machine are the same run.
        provenance=provenance(device=run.device, started=session.started, loss=config.loss,
                              loss_options=config.loss_options, model=run.model))
    if context.is_main:
        write_record(session.output_dir / RESULT, result)
        log.finish(result)
    context.barrier()  # no rank starts the next run before rank 0 has written this one
    return result


def _train_epoch(run: Run, epoch: int, bar: Progress, log: RunLog | None = None) -> float:
    config = run.config
    seed_everything(config.seed * 100_003 + epoch)  # depends on (seed, epoch) only
    warm = epoch < config.warmup_epochs
    _set_warmup(run, warm)
    run.loader.batch_sampler.set_epoch(epoch)
    task = bar.add_task(f"epoch {epoch + 1}/{config.total_epochs}" + (" (warm-up)" if warm else ""),
                        total=len(run.loader), loss=float("nan"), rate=0.0)
    # The running loss stays on the device; reading it (a GPU sync) at most once a second.
    total_loss = torch.zeros((), device=run.device)
    seen, start = 0, time.perf_counter()
    # Step rows for log.csv, the loss kept on the device until the next progress update.
    pending: list[tuple[int, Any, list[float], float]] = []
    first_step, last = epoch * len(run.loader), start
    first_epoch, refresh = run.first_epoch, Every()
    guard = DivergenceGuard(run, epoch)  # a non-finite value stops the run before any checkpoint
    for step, (images, labels) in enumerate(run.loader, 1):
        lrs = [group["lr"] for group in run.optimizer.param_groups]
        images = images.to(run.device, non_blocking=True)
        labels = labels.to(run.device, non_blocking=True)
        with _autocast(run.device, run.amp_dtype):
            embeddings = run.forward_model(images)
        value = guard.loss(step, embeddings.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is None:
            value.backward()
            run.strategy.after_backward(run.loss)
            run.optimizer.step()
        else:
            run.scaler.scale(value).backward()
            run.strategy.after_backward(run.loss)
            run.scaler.step(run.optimizer)
            run.scaler.update()
        batch = len(labels) * run.context.world_size  # the global batch the loss stands for
        total_loss += value.detach() * batch
        seen += batch
        now = time.perf_counter()
        if log is not None:
            pending.append((first_step + step, value.detach(), lrs, batch / max(now - last, 1e-9)))
        last = now
        if step == ESTIMATE_AFTER and epoch == first_epoch:
            _announce_epoch_time(bar.console, run, epoch, (now - start) / step)
        if refresh(force=step == len(run.loader)):
            if pending:
                losses = torch.stack([p[1] for p in pending]).float().tolist()
                log.steps([(s, epoch + 1, v, *lr, rate) for (s, _, lr, rate), v in zip(pending, losses)])
                pending.clear()
            elapsed = time.perf_counter() - start
            bar.update(task, completed=step, loss=total_loss.item() / seen,
                       rate=seen / max(elapsed, 1e-9))
    bar.remove_task(task)
    run.train_seconds += time.perf_counter() - start
    if not warm:
        run.scheduler.step()
    return total_loss.item() / max(seen, 1)


def _log_epoch(run: Run, console: Console, mean_loss: float, seconds: float) -> None:
    config, done = run.config, run.next_epoch
    per_epoch = run.train_seconds / max(done, 1)  # this run's epochs so far, resumed ones included
    images = len(run.loader) * config.batch_size  # global batches
    console.log(epoch_line(config.loss, done, config.total_epochs, mean_loss=mean_loss, images=images,
                           seconds=seconds, seconds_left=per_epoch * (config.total_epochs - done)))


def _announce_epoch_time(console: Console, run: Run, epoch: int, seconds_per_batch: float) -> None:
    per_epoch = seconds_per_batch * len(run.loader)
    if per_epoch < ESTIMATE_FROM_S:
        return
    left = per_epoch * (run.config.total_epochs - epoch)
    console.log(f"{run.config.loss}: about {per_epoch / 60:.1f} min per epoch on {run.device.type} "
                f"({seconds_per_batch:.2f} s per batch over the first {ESTIMATE_AFTER}); "
                f"about {left / 60:.0f} min for the {run.config.total_epochs - epoch} epochs left")


def _validate(run: Run, session: Session) -> EvaluationResult:
    metrics = evaluate(run.plan, run.model, run.validation).metrics
    if session.log is not None:
        session.log.evaluation(run.next_epoch, "validation", metrics)
    session.console.log(_format_eval(f"{run.config.loss} validation", run.next_epoch, metrics, run.config.ks))
    if session.on_validation is not None:
        session.on_validation(run.next_epoch, metrics)
    return metrics


def _format_eval(loss: str, epoch: int, metrics: EvaluationResult, ks: tuple[int, ...]) -> str:
    recalls = " ".join(f"R@{k} {100 * metrics.recall[k]:.1f}" for k in ks)
    line = f"{loss} epoch {epoch}: {recalls} NMI {100 * metrics.nmi:.1f} MAP@R {100 * metrics.map_at_r:.1f}"
    if metrics.binary is not None and 1 in metrics.binary.recall:
        line += f" | binary R@1 {100 * metrics.binary.recall[1]:.1f}"
    return line

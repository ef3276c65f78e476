"""Do a pretrained backbone's BatchNorm statistics survive being re-estimated on the new photos?

Fine-tuning in train mode replaces every BatchNorm layer's running statistics with those of the
training batches (momentum 0.1: within a few dozen batches). This probe measures what that alone
does, before any weight changes: the network as loaded (the comparison's floor: ImageNet
backbone, untrained head), then the same weights with the statistics re-estimated on training
photos of the run's own classes (cumulative average over ``--batches`` batches, with the training
augmentation and with the test transform). Scored on the validation classes only (the shared
settings of ``--preset``, protocol tune: the test split is never read).

    python benchmarks/probe_bn_statistics.py --data-root ../shared/datasets/cub100 \
        --json docs/probe_bn_statistics.json
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, machine_info  # noqa: E402

from losszoo.training.plan import build_model, evaluate, plan_run, train_dataset, validation_data  # noqa: E402
from losszoo.training.spec import load_comparison  # noqa: E402


def reestimated(model: nn.Module, images: torch.utils.data.Dataset, batches: int, batch_size: int) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are the average over ``batches`` shuffled
    batches of ``images``, as train mode computes them; no weight changes."""
    copied = copy.deepcopy(model)
    for module in copied.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average
    copied.train()
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for step, (batch, _) in enumerate(loader):
            if step == batches:
                break
            copied(batch.contiguous(memory_format=torch.channels_last))
    return copied.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/datasets/cub100")
    parser.add_argument("--preset", default="cub100-cpu", help="shipped preset whose shared settings to use")
    parser.add_argument("--batches", type=lambda text: [int(n) for n in text.split(",")], default=[1, 45],
                        help="comma-separated numbers of training batches to re-estimate from (default 1,45)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the untrained head")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    spec = load_comparison(command_line={"data_root": args.data_root, "protocol": "tune"}, preset=args.preset,
                           untuned=True, losses=["normsoftmax"])
    plan = plan_run(spec.base.replace(loss="normsoftmax", seed=args.seed, binary=False))
    machine = machine_info(plan.device, backbone=plan.config.backbone, image_size=plan.config.image_size)
    model = build_model(plan).eval()
    validation = validation_data(plan, model)
    training = train_dataset(plan, model)
    variants = {"as loaded": model, **{
        f"re-estimated on {n} training batch{'es' if n > 1 else ''}": reestimated(model, training, n,
                                                                                plan.config.batch_size)
        for n in args.batches}}
    rows = []
    print("| BatchNorm statistics | validation R@1 | validation MAP@R |\n|---|---|---|")
    for name, variant in variants.items():
        metrics = evaluate(plan, variant, validation).metrics
        rows.append({"statistics": name, "recall@1": metrics.recall[1], "map_at_r": metrics.map_at_r})
        print(f"| {name} | {100 * metrics.recall[1]:.1f} | {100 * metrics.map_at_r:.1f} |", flush=True)
    finish(machine, args, rows)


if __name__ == "__main__":
    main()

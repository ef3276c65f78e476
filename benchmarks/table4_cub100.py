"""Zhai & Wu (2019) Table 4 at CPU scale: NormSoftmax on cub100 with a batch of 75 made of
different numbers of samples per class, beside the paper's Recall@1.

The paper (ResNet-50, 512-d, CUB-200-2011, batch 75) reports R@1 59.5 with no class balancing
(random batches), and 59.6 / 60.0 / 60.8 / 61.3 / 59.6 / 40.9 with 1 / 3 / 12 / 25 / 37 / 75
samples per class. Here every other setting is the cub100 preset's (EfficientNet-Lite0, its
image size, dim, schedule and NormSoftmax's tuned lr and temperature); only the batch (75) and
its composition are set by hand, and each row is a ``losszoo compare`` of NormSoftmax over the
seeds, evaluated once on the 42 test species. What the 58 training species allow, as divisors
of 75: random, 3, 5, 15, 25, 75 (1 per class needs 75 species; 12 and 37 do not divide 75).

    python benchmarks/table4_cub100.py --data-root ../shared/datasets/cub100 --output runs/table4
    python benchmarks/table4_cub100.py --config runs/tune-cub100/best.toml ...   # before shipping

Resumable: each setting is a comparison in its own folder, and a comparison keeps its finished
runs. Prints a Markdown table (mean and 95 % CI over seeds) and writes it to OUTPUT/table4.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAPER_R1 = {"random": 59.5, 1: 59.6, 3: 60.0, 12: 60.8, 25: 61.3, 37: 59.6, 75: 40.9}
SETTINGS: tuple[int | str, ...] = ("random", 3, 5, 15, 25, 75)
BATCH = 75


def settings_of(per_class: int | str) -> dict[str, object]:
    if per_class == "random":
        return {"batch_size": BATCH, "sampler": "random"}
    return {"batch_size": BATCH, "sampler": "class_balanced", "samples_per_class": per_class}


def run_setting(per_class: int | str, args: argparse.Namespace) -> dict[str, object]:
    """One row: NormSoftmax compared over the seeds with this batch composition."""
    from losszoo.training.spec import load_comparison, run_comparison

    folder = args.output / f"per_class_{per_class}"
    spec = load_comparison(command_line={**settings_of(per_class), "data_root": args.data_root},
                           config_file=args.config, preset=None if args.config else args.preset,
                           losses=["normsoftmax"], seeds=args.seeds)
    run_comparison(spec, folder, progress=False)
    summary = json.loads((folder / "results.json").read_text())["summary"]
    return next(row for row in summary if row["loss"] == "normsoftmax")


def cell(row: dict[str, object], metric: str) -> str:
    mean, low, high = (100 * float(row[key]) for key in (metric, f"{metric}_ci_low", f"{metric}_ci_high"))
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/datasets/cub100")
    parser.add_argument("--preset", default="cub100-cpu", help="shipped preset (default cub100-cpu)")
    parser.add_argument("--config", type=Path, default=None, help="a tuned config file instead of the preset")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("runs/table4-cub100"))
    parser.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(map(str, SETTINGS)))
    args = parser.parse_args()
    chosen = SETTINGS if args.only is None else tuple(
        s if s == "random" else int(s) for s in args.only.split(","))
    lines = ["| samples per class (batch 75) | R@1 | MAP@R | paper R@1 (ResNet-50, 512-d, CUB-200) |",
             "|---|---|---|---|"]
    for per_class in chosen:
        row = run_setting(per_class, args)
        paper = PAPER_R1.get(per_class)
        lines.append(f"| {per_class} | {cell(row, 'recall@1')} | {cell(row, 'map_at_r')} | "
                     f"{'' if paper is None else paper} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.output / "table4.md").write_text(table)


if __name__ == "__main__":
    main()

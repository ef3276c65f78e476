"""Put back realistic one-line bugs, one at a time, and check the suite catches each.

    python tests/mutation_check.py [--mutant WORD] [pytest args]

Each mutant is a one-line change applied to a copy of the package in a temporary folder; the
tests that guard it run against that copy (PYTHONPATH first; pytest args given here replace
them). A mutant "survives" when its tests still pass. ``--mutant WORD`` runs only the mutants
whose name contains WORD. Not collected by pytest (no test_ prefix): it runs tests many times.

The first four are the trainer bugs of issue 14; the rest, issue 28's: four that survived the
whole suite, two that only one weak test caught, and two guarding the capabilities and strategy of the rest of #28.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER_TESTS = ("tests/test_trainer.py",)

# (name, file, original line(s), mutated line(s), the tests that must catch it)
MUTANTS = [
    ("warm-up does not freeze the backbone", "losszoo/training/trainer.py",
     "    _set_warmup(run, warm)\n", "    _set_warmup(run, False)\n", TRAINER_TESTS),
    ("scheduler steps during warm-up", "losszoo/training/trainer.py",
     "    if not warm:\n        run.scheduler.step()\n", "    if True:\n        run.scheduler.step()\n",
     TRAINER_TESTS),
    ("per-epoch reseed ignores the epoch", "losszoo/training/trainer.py",
     "    seed_everything(config.seed * 100_003 + epoch)", "    seed_everything(config.seed * 100_003)",
     TRAINER_TESTS),
    ("embeddings extracted in train mode", "losszoo/training/inference.py",
     "    model.eval()\n", "    pass\n", TRAINER_TESTS),
    ("the * mark uses an unpaired t-test", "losszoo/evaluation/stats.py",
     "stats.ttest_rel(a, b)", "stats.ttest_ind(a, b)", ("tests/test_stats.py",)),
    ("the untrained floor is planned with one seed for every row", "losszoo/training/compare.py",
     "plan_run(base.replace(seed=seed, shard_class_weights=False,",
     "plan_run(base.replace(seed=base.seed, shard_class_weights=False,", ("tests/test_fair.py",)),
    ("the fingerprint ignores its exclusions", "losszoo/training/config.py",
     "        skip = (*EVALUATION_ONLY, *exclude)\n", "        skip = EVALUATION_ONLY\n",
     ("tests/test_fair.py",)),
    ("per-rank loss gradients are not averaged across ranks", "losszoo/distributed/losses.py",
     "        dist.all_reduce(param.grad)\n        param.grad /= dist.get_world_size()\n",
     "        pass\n", ("tests/test_distributed.py::test_two_ranks_equal_one_process",)),
    ("tuned settings go to the wrong loss", "losszoo/training/compare.py",
     "        settings = settings_by_name.get(name, {})\n",
     "        settings = next(iter(settings_by_name.values()), {})\n", ("tests/test_fair.py",)),
    ("validation classes: floor(f * n), not round(f * n)", "losszoo/data/splits.py",
     "max(1, round(fraction * num_classes))", "max(1, int(fraction * num_classes))", ("tests/test_fair.py",)),
    ("the tuner searches samples_per_class for a sampler that ignores it", "losszoo/tuning/study.py",
     "    if samples_per_class and len(divisors) > 1:", "    if len(divisors) > 1:",
     ("tests/test_capabilities.py",)),
    ("the replicated strategy does not average a per-rank loss", "losszoo/training/strategy.py",
     "        if self._local_loss:  # a per-rank", "        if False:  # a per-rank",
     ("tests/test_distributed.py::test_two_ranks_equal_one_process",)),
]


def main() -> int:
    args = sys.argv[1:]
    only = None
    if args[:1] == ["--mutant"]:
        only, args = args[1], args[2:]
    survived = 0
    for name, relative, original, mutated, guards in MUTANTS:
        if only is not None and only not in name:
            continue
        targets = args or list(guards)
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder)
            shutil.copytree(ROOT / "losszoo", copy / "losszoo")
            shutil.copytree(ROOT / "tests", copy / "tests")
            shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
            path = copy / relative
            source = path.read_text()
            if source.count(original) != 1:
                print(f"{name}: the original line is not found exactly once in {relative}; update MUTANTS")
                return 2
            path.write_text(source.replace(original, mutated))
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")])}
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                                   *targets], cwd=copy, env=env, capture_output=True, text=True)
            caught = done.returncode != 0
            survived += not caught
            failed = [line.split("::")[-1].split(" ")[0] for line in done.stdout.splitlines()
                      if line.startswith(("FAILED", "ERROR"))]
            last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]
            print(f"{'caught  ' if caught else 'SURVIVED'} {name}: {', '.join(failed) or last}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

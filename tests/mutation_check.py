"""Put the four trainer bugs of issue 14 back, one at a time, and check the suite catches each.

    python tests/mutation_check.py [pytest args, default: tests/test_trainer.py]

Each mutant is a one-line change applied to a copy of the package in a temporary folder; the
tests run against that copy (PYTHONPATH first). A mutant "survives" when the tests still pass.
Not collected by pytest (no test_ prefix): it runs the suite several times over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, file, original line, mutated line)
MUTANTS = [
    ("warm-up does not freeze the backbone", "losszoo/training/trainer.py",
     "    _set_warmup(run, warm)\n", "    _set_warmup(run, False)\n"),
    ("scheduler steps during warm-up", "losszoo/training/trainer.py",
     "    if not warm:\n        run.scheduler.step()\n", "    if True:\n        run.scheduler.step()\n"),
    ("per-epoch reseed ignores the epoch", "losszoo/training/trainer.py",
     "    seed_everything(config.seed * 100_003 + epoch)", "    seed_everything(config.seed * 100_003)"),
    ("embeddings extracted in train mode", "losszoo/training/inference.py",
     "    model.eval()\n", "    pass\n"),
]


def main() -> int:
    targets = sys.argv[1:] or ["tests/test_trainer.py"]
    survived = 0
    for name, relative, original, mutated in MUTANTS:
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
            env = {**os.environ, "PYTHONPATH": str(copy)}
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

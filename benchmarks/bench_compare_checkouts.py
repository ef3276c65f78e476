"""End-to-end ``losszoo compare`` of two checkouts (e.g. main and a branch), interleaved.

Each round runs the same comparison once from each checkout (``OLD`` first in odd rounds,
``NEW`` first in even ones), each in a fresh output folder, so load from other processes hits
both alike. Per run: wall seconds, user + system CPU seconds, minor page faults and peak RSS
(of the run's process tree, from ``os.wait4``); then the median ratio OLD / NEW, and each
checkout's results table (results.md of its last round) to check the metrics agree within their
confidence intervals.

    python benchmarks/bench_compare_checkouts.py /work/main /work/wt/cpu --rounds 2 \\
        --json docs/bench_compare_checkouts.json -- --seeds 1

Arguments after ``--`` go to ``losszoo compare`` (default ``--seeds 1``: the default comparison,
one seed per loss). The environment is passed on as it is: unset OMP_NUM_THREADS to time the
default thread setting of each checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_compare(checkout: Path, output: Path, compare_args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "losszoo", "compare", *compare_args, "--no-progress",
               "--output", str(output)]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{checkout}: losszoo compare failed:\n{stderr[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "system_s": usage.ru_stime,
            "minor_faults": usage.ru_minflt, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    argv = sys.argv[1:]
    compare_args = ["--seeds", "1"]
    if "--" in argv:
        split = argv.index("--")
        argv, compare_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="checkout timed as the baseline (e.g. main)")
    parser.add_argument("new", type=Path, help="checkout with the change")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the output folders here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    for name, path in checkouts.items():
        if not (path / "losszoo" / "__init__.py").is_file():
            raise SystemExit(f"{name}: {path} is not a losszoo checkout")
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_compare_"))
    print(f"losszoo compare {' '.join(compare_args)}; load {os.getloadavg()}; outputs in {base}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for name in order:
            figures = run_compare(checkouts[name], base / f"{name}{round_}", compare_args)
            runs[name].append(figures)
            print(f"  round {round_ + 1} {name}: {figures['wall_s']:.1f} s wall, "
                  f"{figures['minor_faults']:,} faults, peak {figures['peak_rss_mb']:.0f} MB", flush=True)
    ratios = [o["wall_s"] / n["wall_s"] for o, n in zip(runs["old"], runs["new"])]
    peak_ratio = max(n["peak_rss_mb"] for n in runs["new"]) / max(o["peak_rss_mb"] for o in runs["old"])
    print(f"\nold / new wall time: median {statistics.median(ratios):.2f} (rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); new / old peak RSS {peak_ratio:.2f}")
    tables = {}
    for name in runs:
        table = base / f"{name}{args.rounds - 1}" / "results.md"
        tables[name] = table.read_text() if table.is_file() else ""
        print(f"\n## {name}: {checkouts[name]}\n\n{tables[name]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "checkouts": {k: str(v) for k, v in checkouts.items()}, "compare_args": compare_args,
            "runs": runs, "wall_ratio_old_over_new": ratios, "peak_rss_ratio_new_over_old": peak_ratio,
            "tables": tables, "loadavg_after": os.getloadavg()}, indent=1) + "\n")


if __name__ == "__main__":
    main()

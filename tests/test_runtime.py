"""losszoo.runtime: the allocator setting (applied once, can be turned off, changes no result)
and the thread count (sized to the affinity mask, split between ranks and workers). Whatever
changes a process for good (mallopt, an affinity mask) runs in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from losszoo import runtime
from losszoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ON_GLIBC = runtime._glibc() is not None
# What the tests set for the whole suite, and what each subprocess sets for itself.
RUNTIME_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE", runtime.THREADS_ENV,
               runtime.MALLOC_ENV)


def python(code: str, *, prefix: tuple[str, ...] = (), **env: str) -> str:
    """Run ``code`` in a fresh interpreter with only ``env`` of the runtime's variables set;
    its stdout."""
    clean = {k: v for k, v in os.environ.items() if k not in RUNTIME_ENV}
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_allocator_is_tuned_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "_allocator", None)
    monkeypatch.setattr(runtime, "_apply_allocator",
                        lambda: calls.append(1) or runtime.AllocatorSetting(True, "counted"))
    first = runtime.tune_allocator()
    assert runtime.tune_allocator() is first and runtime.tune_process()[0] is first
    assert calls == [1]


FAULTS = """
import resource, torch
from losszoo import runtime
setting = runtime.tune_allocator()

def churn(times):  # 40 MiB blocks: above glibc's mmap threshold (at most 32 MiB), below losszoo's
    for _ in range(times):
        block = torch.empty(10 * 2**20).fill_(1.0)
        del block

churn(12)  # the heap settles in its first few blocks (3 to 8 seen)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(10)
print(setting.applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, setting.reason)
"""


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt thresholds are glibc's")
def test_the_allocator_setting_reuses_freed_memory_and_can_be_turned_off():
    tuned = python(FAULTS).split(maxsplit=2)
    default = python(FAULTS, **{runtime.MALLOC_ENV: "0"}).split(maxsplit=2)
    assert tuned[0] == "True" and default[0] == "False"
    assert runtime.MALLOC_ENV in default[2]
    # glibc's default mmaps and unmaps each block: every page faults again, 10 times over.
    # Tuned, the first block's pages are reused.
    pages = 10 * 10 * 2**20 * 4 // os.sysconf("SC_PAGE_SIZE")
    assert int(default[1]) > pages // 2 and int(tuned[1]) < int(default[1]) // 4


def test_a_run_is_bit_identical_with_and_without_the_allocator_setting(tmp_path):
    args = ["-m", "losszoo", "train", "--loss", "normsoftmax", "--backbone", "convnet4",
            "--no-pretrained", "--dim", "8", "--max-classes", "5", "--batch-size", "10",
            "--samples-per-class", "5", "--batches-per-epoch", "3", "--epochs", "1", "--ks", "1",
            "--no-progress", "--device", "cpu"]
    records, states = [], []
    for name, env in (("tuned", {}), ("default", {runtime.MALLOC_ENV: "0"})):
        out = tmp_path / name
        clean = {k: v for k, v in os.environ.items() if k not in RUNTIME_ENV}
        done = subprocess.run([sys.executable, *args, "--output", str(out)], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path,
                              env={**clean, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env})
        assert done.returncode == 0, done.stderr
        records.append(json.loads((out / "result.json").read_text()))
        states.append(torch.load(out / "checkpoint.pt", weights_only=False)["model"])
    assert records[0]["metrics"] == records[1]["metrics"]
    assert records[0]["history"] == records[1]["history"]
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


THREADS = """
import os, torch
from losszoo import runtime
for workers, env in {scenarios}:
    os.environ.update(env)
    setting = runtime.size_threads(workers=workers)
    print(torch.get_num_threads(), setting.usable_cores, end=" | ")
    for name in env:
        del os.environ[name]
"""


@pytest.mark.skipif(shutil.which("taskset") is None or runtime.usable_cores() < 2,
                    reason="needs taskset and two usable cores")
def test_threads_follow_the_affinity_mask_ranks_and_workers():
    cores = runtime.usable_cores()
    scenarios = [
        (0, {}),
        # OMP_NUM_THREADS outside torchrun is left to torch (which read it as it started, so
        # here the threads stay as they are)
        (0, {"OMP_NUM_THREADS": "1"}),
        (0, {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}),  # torchrun: 1 each; losszoo: a share
        (1, {}),
        (0, {runtime.THREADS_ENV: "1"}),  # explicit settings win
    ]
    found = python(THREADS.format(scenarios=scenarios)).rstrip(" |").split(" | ")
    assert found == [f"{cores} {cores}", f"{cores} {cores}", f"{max(1, cores // 2)} {cores}",
                     f"{max(1, cores - 1)} {cores}", f"1 {cores}"]
    first_core = str(min(os.sched_getaffinity(0)))
    masked = python(THREADS.format(scenarios=[(0, {})]), prefix=("taskset", "-c", first_core))
    assert masked.rstrip(" |") == "1 1"


def test_a_bad_thread_count_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ConfigError, match="LOSSZOO_THREADS must be a positive integer"):
        runtime.planned_threads()


def test_threads_are_left_alone_unless_the_process_opted_in(monkeypatch):
    monkeypatch.setattr(runtime, "_threads_managed", False)
    threads = torch.get_num_threads()
    assert runtime.size_threads_for_run(workers=0) is None
    assert torch.get_num_threads() == threads


def test_native_bf16_is_read_from_the_cpu():
    flags = runtime.cpu_flags()
    if flags:  # /proc/cpuinfo: the probe agrees with the CPU's own flags
        assert runtime.native_bf16() == bool({"amx_bf16", "avx512_bf16"} & flags)

"""Process-wide CPU settings: the C allocator, the number of threads, and what the CPU can do.

The ``losszoo`` command (and ``python -m losszoo``, and so every torchrun rank) calls
:func:`tune_process` as it starts; Python users call it once themselves::

    import losszoo.runtime
    losszoo.runtime.tune_process()

A library import changes nothing in the process by itself.

- The allocator: glibc returns every large freed block to the kernel (``mmap`` from 128 KiB up,
  ``trim`` of the heap top), so a training step's short-lived tensors are page-faulted in afresh
  every time: about 150,000 minor faults per second during ``losszoo compare`` on a CPU, 20-40 %
  of its time. :func:`tune_allocator` raises both thresholds so freed memory is reused. It never
  changes a result, only where the bytes come from. ``LOSSZOO_MALLOC_TUNING=0`` leaves glibc's
  defaults; on other C libraries (musl, macOS, Windows) it does nothing.
- Threads: torch sizes its intra-op pool to the cores the process may run on (its affinity
  mask: ``taskset``, cpusets, a batch scheduler) but knows nothing of the data-loading workers
  beside it, and torchrun pins every rank to one thread (``OMP_NUM_THREADS=1``) whatever the
  cores. :func:`size_threads` gives each process its share of the cores of its mask, split
  between torchrun's local ranks, less one per data-loading worker. ``LOSSZOO_THREADS=N`` sets
  N; ``OMP_NUM_THREADS`` set outside torchrun is left to torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MALLOC_ENV = "LOSSZOO_MALLOC_TUNING"  # "0" (or "off", "false", "no"): leave glibc's defaults
THREADS_ENV = "LOSSZOO_THREADS"  # a positive integer: intra-op threads per process
OFF_VALUES = ("0", "off", "false", "no")

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# Blocks below MMAP_THRESHOLD come from the heap and are reused after free; the heap top is
# returned to the kernel only beyond TRIM_THRESHOLD of free memory. 1 GiB each: a resnet50
# step at batch 75 frees ~100 MB blocks; mallopt takes an int, so 2 GiB is the ceiling.
MMAP_THRESHOLD = TRIM_THRESHOLD = 2**30


@dataclass(frozen=True)
class AllocatorSetting:
    """What :func:`tune_allocator` did: ``applied``, or ``reason`` why not."""

    applied: bool
    reason: str
    mmap_threshold: int | None = None
    trim_threshold: int | None = None


@dataclass(frozen=True)
class ThreadSetting:
    """What :func:`size_threads` chose, and from what."""

    threads: int
    reason: str
    usable_cores: int
    local_ranks: int
    workers: int


_allocator: AllocatorSetting | None = None
_threads_managed = False


def tune_process(*, workers: int = 0) -> tuple[AllocatorSetting, ThreadSetting]:
    """The allocator (once per process) and threads for ``workers`` data-loading processes;
    afterwards every training run sizes the threads for its own ``workers`` setting."""
    global _threads_managed
    _threads_managed = True
    return tune_allocator(), size_threads(workers=workers)


def tune_allocator() -> AllocatorSetting:
    """Raise glibc's mmap and trim thresholds, once per process (later calls return the first
    call's outcome). A no-op, with its reason, when turned off or not on glibc."""
    global _allocator
    if _allocator is None:
        _allocator = _apply_allocator()
    return _allocator


def _apply_allocator() -> AllocatorSetting:
    if os.environ.get(MALLOC_ENV, "").strip().lower() in OFF_VALUES:
        return AllocatorSetting(False, f"turned off by {MALLOC_ENV}")
    libc = _glibc()
    if libc is None:
        return AllocatorSetting(False, "not glibc: nothing to tune")
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; trim first: setting either fixes glibc's dynamic threshold.
    if not (mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)):
        return AllocatorSetting(False, "mallopt refused the thresholds")
    return AllocatorSetting(True, "glibc mallopt", MMAP_THRESHOLD, TRIM_THRESHOLD)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # glibc only: musl has mallopt but no thresholds
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc if version() and hasattr(libc, "mallopt") else None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def local_ranks() -> int:
    """Processes of this job on this machine: torchrun's ``LOCAL_WORLD_SIZE``, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def planned_threads(*, workers: int = 0) -> ThreadSetting:
    """The intra-op threads for this process, without setting them (see :func:`size_threads`)."""
    cores, ranks = usable_cores(), local_ranks()
    explicit = os.environ.get(THREADS_ENV, "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) < 1:
            from losszoo.errors import ConfigError

            raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {explicit!r}")
        return ThreadSetting(int(explicit), f"set by {THREADS_ENV}", cores, ranks, workers)
    if "OMP_NUM_THREADS" in os.environ and "LOCAL_WORLD_SIZE" not in os.environ:
        import torch

        return ThreadSetting(torch.get_num_threads(), "OMP_NUM_THREADS, left to torch", cores,
                             ranks, workers)
    # torchrun sets OMP_NUM_THREADS=1 for every rank; each rank's share is better.
    share = max(1, cores // ranks - workers)
    return ThreadSetting(share, f"{cores} usable cores / {ranks} local rank(s) - {workers} "
                         "data-loading worker(s)", cores, ranks, workers)


def size_threads(*, workers: int = 0) -> ThreadSetting:
    """Set torch's intra-op threads to this process's share of its usable cores: the cores of
    its affinity mask, split between torchrun's local ranks, less one per data-loading worker
    (each worker computes on one thread of its own); at least 1."""
    import torch

    setting = planned_threads(workers=workers)
    if torch.get_num_threads() != setting.threads:
        torch.set_num_threads(setting.threads)
    return setting


def size_threads_for_run(workers: int) -> ThreadSetting | None:
    """:func:`size_threads` for a training run, when the process asked for it
    (:func:`tune_process`); else None, leaving the caller's threads alone."""
    return size_threads(workers=workers) if _threads_managed else None


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux), else empty."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    found = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16): only then is
    bfloat16 autocast faster than float32 on it."""
    import torch

    cpu = torch.cpu
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    if all(hasattr(cpu, probe) for probe in probes):
        return any(getattr(cpu, probe)() for probe in probes)
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())

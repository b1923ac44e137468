"""The timing harness every section uses: thread settings, best-of-n timings, paired turns, the machine's
description and how numbers print.

Each timing is the best of several repeats, so other work on the machine inflates numbers rather than deflates
them; speed-ups are medians of ratios taken turn by turn (``side_by_side``).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

Result = TypeVar("Result")
THREADS = 2


def set_threads() -> None:
    """Pin every thread pool (torch, MKL, OpenMP, numba) to ``THREADS``: call before numpy, numba or torch start
    one."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(THREADS)


def at_threads(threads: int, function: Callable[[], Result]) -> Result:
    """``function()`` with torch's intra-op pool at ``threads``, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return function()
    finally:
        torch.set_num_threads(before)


def best_time(function: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def side_by_side(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each contender's call in each of ``repeats`` turns, the contenders taking turns.

    The VM's speed drifts by ±30% within minutes, so rates measured one after the other can differ by more than
    the speed-up they compare; calls in the same turn run seconds apart and see the same speed, so the ratio of
    two contenders is taken turn by turn. Each turn starts with an untimed call, as a loop over files would have
    run one just before (caches, thread pools, allocator).
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, contender in contenders.items():
            contender()
            start = time.perf_counter()
            contender()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def paired_ratios(seconds: list[float], reference: list[float]) -> list[float]:
    """How many times faster than ``reference`` each turn was, sorted (see ``side_by_side``)."""
    return sorted(theirs / ours for ours, theirs in zip(seconds, reference, strict=True))


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant figures and thousands separators."""
    if value == 0 or value != value:
        return str(value)
    magnitude = len(str(int(abs(value)))) if abs(value) >= 1 else 0
    decimals = max(0, digits - magnitude)
    return f"{value:,.{decimals}f}"


def machine() -> dict:
    """CPU, cores, memory, GPU, library versions and the load average: the header of ``bench.md``."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    import librosa
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
        "threads": THREADS,
        "torch": torch.__version__,
        "librosa": librosa.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def peak_rss_mb(who: int | None = None) -> float:
    """Peak resident memory of this process (or of ``resource.RUSAGE_CHILDREN``), in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF if who is None else who).ru_maxrss / 1024  # Linux reports KiB


def section_process(module: str, options: list[str], timeout: int) -> dict:
    """``python -m module *options json=FILE`` in a process of its own (so its peak RSS is its own): the dict it
    wrote, or ``{"error": ...}`` when it failed or ran past ``timeout`` seconds."""
    import json
    import subprocess
    import sys
    import tempfile

    from benchmarks import REPO

    with tempfile.TemporaryDirectory(prefix=f"finser-{module.replace('.', '-')}-") as temporary:
        out = Path(temporary) / "section.json"
        command = [sys.executable, "-m", module, *options, f"json={out}"]
        try:
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"{module} took over {timeout} s"}
        if result.returncode != 0 or not out.exists():
            return {"error": f"{module} failed ({result.returncode}): {result.stderr[-1500:]}"}
        return json.loads(out.read_text())

"""Section 4, start-up: wall time from launching ``python train.py`` to the start of its first training batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import REPO
from finser.report import markdown_table


def time_train_py(*overrides: str, cache_dir: str | None = None) -> float | None:
    """Seconds from launch to the first training batch of a one-batch ``python train.py`` run with ``overrides``
    (``cache_dir``: its ``FINSER_CACHE``); None, with the run's stderr printed, when it failed."""
    with tempfile.TemporaryDirectory(prefix="finser-startup-") as temporary:
        stamp = Path(temporary) / "startup.json"
        env = {
            **os.environ,
            "BENCH_STARTUP_FILE": str(stamp),
            "WANDB_MODE": "offline",
        }
        if cache_dir is not None:
            env["FINSER_CACHE"] = cache_dir
        command = [
            sys.executable,
            "train.py",
            "training.max_epochs=1",
            "training.limit_train_batches=1",
            "training.limit_val_batches=1",
            "training.limit_test_batches=1",
            f"hydra.run.dir={temporary}/run",
            f"paths.fin_dir={temporary}/fins",
            "+callbacks.bench_timer._target_=benchmarks.callbacks.FirstStepTimer",
            *overrides,
        ]
        env["BENCH_T0"] = repr(time.time())
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not stamp.exists():
            print(result.stderr[-3000:], file=sys.stderr)
            return None
        return json.loads(stamp.read_text())["first_step_s"]


def run(cold: bool) -> dict:
    """The imports alone, ``train.py`` warm (best of two, with and without the pre-training evaluation) and, if
    ``cold``, with an empty cache."""
    imports = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import finser.run, finser.tasks.fin, finser.data.frames"], cwd=REPO, check=True
        )
        imports.append(time.perf_counter() - start)
    warm = [time_train_py() for _ in range(2)]  # the first also makes sure the default corpus is cached
    result = {
        "imports_s": min(imports),
        "warm_default_s": min((t for t in warm if t is not None), default=None),
        "warm_no_pre_evaluation_s": time_train_py("evaluate_before_training=false"),
    }
    if cold:
        with tempfile.TemporaryDirectory(prefix="finser-cold-cache-") as cache:
            result["cold_cache_s"] = time_train_py(cache_dir=cache)
    return result


def markdown(result: dict) -> str:
    """The section's table: one row per timing."""

    def seconds(value: float | None) -> str:
        return "failed (see stderr)" if value is None else f"{value:.1f} s"

    rows = [
        ["imports (`import finser.run, finser.tasks.fin, finser.data.frames`)", seconds(result["imports_s"])],
        [
            "`python train.py` → first step, warm cache (default: tests the untrained FIN first)",
            seconds(result["warm_default_s"]),
        ],
        ["same with `evaluate_before_training=false`", seconds(result["warm_no_pre_evaluation_s"])],
    ]
    if "cold_cache_s" in result:
        rows.append(
            [
                "`python train.py` → first step, empty cache (generates the synthetic corpus)",
                seconds(result["cold_cache_s"]),
            ]
        )
    return (
        "Wall time from launching the process to the start of the first training batch (goal < 15 s warm).\n\n"
        + markdown_table(["what", "time"], rows)
    )

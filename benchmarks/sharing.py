"""Section 7: sharing the cores. ``compute_all`` and a FIN training step, alone and beside two CPU-bound processes.

Sweeps run jobs side by side (joblib, several workers, a second user): idle OpenMP threads that spin oversubscribe the
cores. Each measurement runs in a fresh process (``python -m benchmarks.sharing --child``), since OpenMP reads its wait
policy once, at start: finser's default (``OMP_WAIT_POLICY=PASSIVE``, set by ``train.py``) and OpenMP's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks import REPO
from benchmarks.timing import THREADS, best_time, fmt
from finser.report import markdown_table

POLICIES = {"PASSIVE (finser's default)": "PASSIVE", "OpenMP's default": None}
COMPETITORS = (0, 2)
GOAL = 3.0  # the loaded rate within this factor of the idle one: a fair share of two cores among three processes


@contextmanager
def competing(n_processes: int) -> Iterator[list[subprocess.Popen]]:
    """``n_processes`` pure-Python busy loops on the same cores while the block runs (none are left behind)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n_processes)]
    try:
        time.sleep(0.5 if burners else 0)  # let them reach the scheduler's steady state
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def child() -> dict[str, float]:
    """Frames per second of ``compute_all`` and of one spectral MFCC FIN's training step, in this process."""
    import torch

    from benchmarks.clips import clip_frames, speech_like_clips
    from finser.features import compute, compute_all
    from finser.models.fin import spectral_fin

    torch.set_num_threads(THREADS)
    frames = clip_frames(speech_like_clips(8))[:1024].contiguous()
    net = spectral_fin("mfcc")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    batch, targets = frames[:256], compute("mfcc", frames[:256])

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(batch), targets).backward()
        optimizer.step()

    return {
        "compute_all_frames_per_s": len(frames) / best_time(lambda: compute_all(frames), 5),
        "fin_step_frames_per_s": len(batch) / best_time(step, 5),
    }


def measure(policy: str | None) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, "-m", "benchmarks.sharing", "--child"]
    output = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(output.stdout.strip().splitlines()[-1])


def run() -> dict:
    results: dict = {}
    for label, policy in POLICIES.items():
        for n_processes in COMPETITORS:
            with competing(n_processes):
                results[f"{label}|{n_processes}"] = measure(policy)
    return results


def markdown(results: dict) -> str:
    rows = []
    for label in POLICIES:
        idle, loaded = results[f"{label}|0"], results[f"{label}|{COMPETITORS[-1]}"]
        for key, name in (("compute_all_frames_per_s", "compute_all"), ("fin_step_frames_per_s", "MFCC FIN step")):
            slowdown = idle[key] / loaded[key]
            verdict = "✓" if slowdown <= GOAL else "⚠"
            rows.append([label, name, fmt(idle[key], 0), fmt(loaded[key], 0), f"{slowdown:.1f}× {verdict}"])
    header = ["OMP_WAIT_POLICY", "work", "frames/s alone", f"beside {COMPETITORS[-1]} busy processes", "slow-down"]
    return (
        f"{THREADS} torch threads; the competitors are pure-Python busy loops on the same cores. Goal: slow-down ≤ "
        f"{GOAL:.0f}× (a fair share of the cores).\n\n" + markdown_table(header, rows)
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(child()))
    else:
        print(markdown(run()))

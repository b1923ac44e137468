"""Section 6, predicting a long file: ``python predict.py`` on a generated 60-minute file, its peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import REPO
from benchmarks.heads import head_config
from benchmarks.timing import fmt
from finser.report import markdown_table


def tiny_ser_checkpoint(path: Path) -> Path:
    """An untrained SER model (exact front-end, the study's conv1d head) published as run.py publishes one."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from finser.data.labels import EMOTIONS
    from finser.models.checkpoint import save_checkpoint

    head = head_config("conv1d")
    config = {"_target_": "finser.models.ser.SERModel", "front_end": {"_target_": "finser.models.ser.ExactFrontEnd"},
              "head": OmegaConf.to_container(head, resolve=True)}  # fmt: skip
    meta = {"kind": "ser", "emotions": list(EMOTIONS), "clip_samples": 55_125, "sample_rate": 22_050}
    return save_checkpoint(instantiate(config), config, path, **meta)


def write_noise(path: Path, minutes: float, sample_rate: int) -> Path:
    """Quiet white noise as 16-bit PCM, written a minute at a time (an hour at 16 kHz is 115 MB on disk)."""
    import numpy as np
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    remaining = round(minutes * 60 * sample_rate)
    with soundfile.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as handle:
        while remaining > 0:
            block = min(remaining, 60 * sample_rate)
            handle.write((0.1 * rng.standard_normal(block)).astype(np.float32))
            remaining -= block
    return path


# Starts predict.py and reports its exit code and peak RSS. A process's ru_maxrss keeps, across exec, the resident size
# of the process it was forked from, so the measured process must be forked from this small launcher, not from a
# large parent (a pytest worker holding ~1 GB would set the floor of the measurement).
LAUNCHER = (
    "import json, os, subprocess, sys; process = subprocess.Popen(sys.argv[2:]); _, status, usage = "
    "os.wait4(process.pid, 0); open(sys.argv[1], 'w').write(json.dumps([os.waitstatus_to_exitcode(status), "
    "usage.ru_maxrss]))"
)


def predict_peak_rss(arguments: list[str], out: Path) -> dict:
    """``python predict.py ARGUMENTS`` in its own process, stdout to ``out``; its own peak RSS (Linux reports KiB)."""
    start = time.perf_counter()
    report = out.with_suffix(".rss.json")
    command = [sys.executable, "-c", LAUNCHER, str(report), sys.executable, str(REPO / "predict.py"), *arguments]
    with out.open("w") as stdout, out.with_suffix(".stderr").open("w+") as stderr:
        subprocess.run(command, cwd=REPO, stdout=stdout, stderr=stderr, check=True)
        stderr.seek(0)
        returncode, peak_kib = json.loads(report.read_text())
        return {
            "returncode": returncode,
            "peak_rss_mb": round(peak_kib / 1024, 1),
            "seconds": round(time.perf_counter() - start, 1),
            "stderr": stderr.read()[-1500:],
        }


def run(minutes: float = 60, sample_rate: int = 16_000) -> dict:
    """``predict.py`` on one generated file of ``minutes`` (goal: peak RSS under 1 GB for an hour)."""
    with tempfile.TemporaryDirectory(prefix="finser-bench-predict-") as temporary:
        checkpoint = tiny_ser_checkpoint(Path(temporary) / "ser_model.ckpt")
        audio = write_noise(Path(temporary) / "long.wav", minutes, sample_rate)
        result = predict_peak_rss([f"ckpt={checkpoint}", f"audio={audio}"], Path(temporary) / "out.csv")
    return {"minutes": minutes, "sample_rate": sample_rate, **result}


def markdown(result: dict) -> str:
    """The section's table and whether the peak RSS meets the < 1 GB goal."""
    if result["returncode"] != 0:
        return f"**Failed** (exit {result['returncode']}): {result['stderr']}"
    verdict = "meets" if result["peak_rss_mb"] < 1024 else "misses"
    rows = [[f"{result['minutes']:g} min at {result['sample_rate']:,} Hz", fmt(result["peak_rss_mb"]),
             f"{result['seconds']:.1f} s"]]  # fmt: skip
    return "\n".join(
        [
            "`python predict.py ckpt=... audio=LONG.wav` in its own process (untrained exact-features SER model, white "
            "noise, 16-bit WAV); peak RSS of that process from `wait4`.\n",
            markdown_table(["file", "peak RSS (MB)", "wall time"], rows),
            f"\nPeak RSS {result['peak_rss_mb']:,.0f} MB: {verdict} the < 1 GB goal.",
        ]
    )

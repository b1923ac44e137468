"""Section 8, SER training steps against the cores' peak: the GFLOP/s one training step (forward, backward, Adam)
achieves for each variant, head and batch size, beside a dense float32 matrix product's GFLOP/s measured in the same
process; and a fine-tuned epoch through Lightning, paired turn by turn with the same epoch at ``epoch_rev=``.

FLOPs are ``torch.utils.flop_counter.FlopCounterMode``'s count of the step's matrix products and convolutions,
forward and backward (2 per multiply-add), the work a matrix product's rate is comparable with; the rest (the
elementwise ops, Adam) is time the step spends beyond them. The baseline and frozen variants train the head on
features computed once per clip (``SERTask`` caches a frozen front-end's values), so their step is the head's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import EPOCH_REV, REPO
from benchmarks.heads import head_config
from benchmarks.timing import best_time, fmt, paired_ratios
from finser.report import markdown_table

VARIANTS = ("baseline", "frozen", "finetuned", "scratch")
HEADS = ("conv1d", "temporal")
BATCHES = (8, 64)
PEAK_SIZE = 2048


def peak_gflops(repeats: int) -> float:
    """The cores' practical peak: GFLOP/s of a dense float32 (2048 × 2048) @ (2048 × 2048) product."""
    import torch

    a, b = torch.randn(PEAK_SIZE, PEAK_SIZE), torch.randn(PEAK_SIZE, PEAK_SIZE)
    return 2 * PEAK_SIZE**3 / best_time(lambda: a @ b, repeats) / 1e9


def build_model(variant: str, head: str):
    """The variant's SERModel (spectral FINs redrawn at random for ``scratch``) and whether its front-end trains."""
    import torch
    from hydra.utils import instantiate

    from finser.models.ser import ExactFrontEnd, FINFrontEnd, SERModel

    torch.manual_seed(0)
    front_end = ExactFrontEnd() if variant == "baseline" else FINFrontEnd("spectral")
    if variant == "scratch":
        front_end.randomize_()
    model = SERModel(front_end, instantiate(head_config(head)))
    trainable = variant in ("finetuned", "scratch")
    model.front_end.requires_grad_(trainable)
    return model, trainable


def optimizer_options(revision: str | None = None) -> dict:
    """The Adam options (``fused``, ``weight_decay``, ...) of ``conf/training/default.yaml`` here or at ``revision``:
    what a run there steps with by default; ``{}`` when git cannot read it."""
    import yaml

    if revision is None:
        text = (REPO / "conf" / "training" / "default.yaml").read_text()
    else:
        shown = subprocess.run(["git", "show", f"{revision}:conf/training/default.yaml"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
        if shown.returncode != 0:
            return {}
        text = shown.stdout
    options = yaml.safe_load(text).get("optimizer") or {}
    return {key: value for key, value in options.items() if not key.startswith("_")}


def training_step(variant: str, head: str, waveforms, labels) -> Callable[[], None]:
    """One training step as ``SERTask`` takes it: a trainable front-end runs on the waveforms, a frozen one's
    values were computed once (its cache)."""
    import torch

    model, trainable = build_model(variant, head)
    model.train()
    optimizer = torch.optim.Adam(model.parameter_groups(1e-3), **{**optimizer_options(), "eps": 1e-7})
    if not trainable:
        model.front_end.eval()
        with torch.no_grad():
            cached = model.frame_features(waveforms)

    def step() -> None:
        optimizer.zero_grad()
        values, mask = model.frame_features(waveforms) if trainable else cached
        torch.nn.functional.cross_entropy(model.classify(values, mask), labels).backward()
        optimizer.step()

    return step


def step_flops(step: Callable[[], None]) -> int:
    """Matrix-product and convolution FLOPs of one call of ``step``, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def step_rates(clips: list, quick: bool) -> dict:
    """GFLOP/s and its ratio to the peak for every variant × head × batch (``quick``: the first batch size only),
    the peak measured before and after."""
    import numpy as np
    import torch

    repeats = 2 if quick else 4
    peaks = [peak_gflops(repeats)]
    rows = {}
    for batch in BATCHES[:1] if quick else BATCHES:
        waveforms = torch.from_numpy(np.stack([clips[index % len(clips)] for index in range(batch)]))
        labels = torch.arange(batch) % 8
        for head in HEADS:
            for variant in VARIANTS:
                step = training_step(variant, head, waveforms, labels)
                flops = step_flops(step)
                seconds = best_time(step, repeats)
                rows[f"{variant}/{head}/{batch}"] = {"gflop": flops / 1e9, "step_s": seconds}
    peaks.append(peak_gflops(repeats))
    peak = max(peaks)
    for row in rows.values():
        row["gflops"] = row["gflop"] / row["step_s"]
        row["of_peak"] = row["gflops"] / peak
    return {"peak_gflops": peak, "peaks_gflops": peaks, "frames_per_clip": clip_frames(clips[0]), "steps": rows,
            "optimizer": optimizer_options()}  # fmt: skip


def clip_frames(clip) -> int:
    from finser.models.ser import n_frames

    return n_frames(len(clip))


# ----------------------------------------------------------------------------------------------------------------
# The fine-tuned epoch, paired with an older revision


def source_at(revision: str) -> Path | None:
    """``src/`` of ``revision`` unpacked into a temporary folder (git archive); None when git cannot."""
    folder = Path(tempfile.mkdtemp(prefix=f"finser-{revision}-"))
    archive = folder / "src.tar"
    try:
        subprocess.run(
            ["git", "archive", "-o", str(archive), revision, "src"], cwd=REPO, check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    with tarfile.open(archive) as members:
        members.extractall(folder, filter="data")
    return folder / "src"


def epoch_in(source: Path, arguments: dict) -> float:
    """Seconds of one fine-tuned epoch in a fresh process importing ``finser`` from ``source`` (its best of
    ``arguments['epochs']``, after a warm-up epoch)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.epoch", json.dumps(arguments)],
        cwd=REPO,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["epoch_s"])


def paired_epochs(revision: str, quick: bool) -> dict:
    """A fine-tuned epoch (spectral FINs, conv1d head, batch 8 of 1.5 s clips) here and at ``revision``, the two
    taking turns, each turn in fresh processes."""
    before = source_at(revision)
    if before is None:
        return {"error": f"git cannot read revision {revision}"}
    arguments = {"batches": 12 if quick else 48, "batch_size": 8, "seconds": 1.5, "epochs": 1 if quick else 2}
    contenders = {"now": (REPO / "src", None), revision: (before, revision)}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(2 if quick else 3):
        for name, (source, at) in contenders.items():
            seconds[name].append(epoch_in(source, {**arguments, "optimizer": optimizer_options(at)}))
    return {
        **arguments,
        "revision": revision,
        "epoch_s": seconds,
        "speedups": paired_ratios(seconds["now"], seconds[revision]),
    }


def run(clips: list, quick: bool, revision: str = EPOCH_REV) -> dict:
    return {"steps": step_rates(clips, quick), "epoch": paired_epochs(revision, quick)}


def markdown(result: dict) -> str:
    """The step table against the peak, then the paired epoch."""
    steps = result["steps"]
    rows = [
        [*key.split("/"), fmt(row["gflop"]), fmt(1000 * row["step_s"]), fmt(row["gflops"]), f"{row['of_peak']:.2f}"]
        for key, row in steps["steps"].items()
    ]
    header = ["variant", "head", "batch", "GFLOP per step", "ms per step", "GFLOP/s", "÷ peak"]
    epoch = result["epoch"]
    if "error" in epoch:
        epoch_text = f"Fine-tuned epoch not paired: {epoch['error']}."
    else:
        revision, ratios = epoch["revision"], epoch["speedups"]
        epoch_text = (
            f"A fine-tuned epoch ({epoch['batches']} batches of {epoch['batch_size']} clips of {epoch['seconds']} s, "
            f"spectral FINs, conv1d head, through Lightning's `Trainer` and `SERTask`), here and at {revision}, in "
            f"turns, each in a fresh process: {', '.join(fmt(s) for s in epoch['epoch_s']['now'])} s here, "
            f"{', '.join(fmt(s) for s in epoch['epoch_s'][revision])} s at {revision}, each with its revision's "
            f"default Adam: **"
            f"{fmt(ratios[len(ratios) // 2])}× faster** (median of the turns' paired ratios, all: "
            f"{', '.join(fmt(r) for r in ratios)})."
        )
    return "\n".join(
        [
            f"One training step (forward, backward, Adam as conf/training/default.yaml sets it: "
            f"{steps.get('optimizer', {})}; {steps['frames_per_clip']} frames per clip, 2.5 s) per "
            "variant, head and batch; FLOPs are the step's matrix products and convolutions (FlopCounterMode). Peak: "
            f"a dense float32 {PEAK_SIZE}² matrix product in the same process, {fmt(steps['peak_gflops'])} GFLOP/s "
            f"(best of the runs before and after the table: {', '.join(fmt(p) for p in steps['peaks_gflops'])}).\n",
            markdown_table(header, rows),
            "",
            epoch_text,
        ]
    )

"""Section 9 (opt-in: ``scale=``), the study's scale rehearsed: ``dataset=synthetic_study`` with ``augment=true``.

    python -m benchmarks.scale [fraction=0.005] [batches=4] [batch_size=32] [trainer=cpu] [cache_dir=DIR]
                               [json=OUT.json] [markdown=OUT.md]

Generates the study-shaped corpus at ``fraction`` of its 12,161 clips (every corpus × emotion kept in proportion),
builds the decoded cache of its split with the augmented copies (as the SER presets' first run does; in
``cache_dir``, default a temporary folder removed after), then times ``batches`` training steps (of ``batch_size``
clips, on ``trainer`` cpu or gpu) of each SER variant through a real Lightning Trainer. Everything is extrapolated
linearly to the whole corpus and, with the early-stopping rule of ``conf/experiment/ser_common.yaml``, to a
converged run (see :func:`converged_epochs`). The FIN variants start from random weights here (``fin.init=random``):
a step costs the same whatever the weights, and the bench needs no pre-trained checkpoints. Validation is not
timed (it adds one forward pass over the val clips per epoch). ``make bench`` runs this module in a process of its
own (:func:`run`), so its peak RSS is this section's alone.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import REPO
from benchmarks.timing import fmt, peak_rss_mb, section_process
from finser.cli import Key, exit_code, parse_keys, usage

STUDY_CLIPS = 12_161
KEYS = {
    "fraction": Key("0.005", kind="fraction"),
    "batches": Key("4", kind="count"),
    "batch_size": Key("32", kind="count"),
    "trainer": Key("cpu"),
    "cache_dir": Key(),
    "json": Key(),
    "markdown": Key(),
}
USAGE = usage(__doc__.split("\n\n")[1])
# The embedded corpus's study head converges after about 2,400 steps of batch 8 (docs/ser.md): the clips a head sees
# before its best validation epoch, assumed the same at the study's scale.
CLIPS_TO_CONVERGE = 2_400 * 8
VARIANTS: dict[str, list[str]] = {
    "baseline": ["experiment=ser_baseline"],
    "frozen": ["experiment=ser_fin_frozen", "fin.init=random"],
    "fine-tuned": ["experiment=ser_fin_finetuned", "fin.init=random"],
    "random init": ["experiment=ser_fin_scratch"],
}


def compose(overrides: list[str], output_dir: Path):
    """``train.py``'s config for ``overrides``, with the Hydra config set so ``${hydra:...}`` resolves."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from finser.launch import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def folder_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def converged_epochs(train_clips: int, batch_size: int, patience: int, min_steps: int, max_epochs: int) -> int:
    """Epochs of a run stopped by the rule: the best epoch (``CLIPS_TO_CONVERGE`` clips seen, and no earlier than
    ``min_steps`` optimiser steps), then ``patience`` epochs without improvement; never past ``max_epochs``."""
    steps_per_epoch = math.ceil(train_clips / batch_size)
    best = max(math.ceil(CLIPS_TO_CONVERGE / train_clips), math.ceil(min_steps / steps_per_epoch))
    return min(best + patience, max_epochs)


def step_seconds(cfg, datamodule, batches: int) -> float:
    """Median seconds per training step over ``batches`` steps after two warm-up steps, validation off."""
    from benchmarks.callbacks import timed_fit
    from finser.pipeline import build_task

    task, _ = build_task(cfg, datamodule.test_set_names)
    timer = timed_fit(task, batches + 2, cfg.trainer.accelerator, cfg.trainer.precision, datamodule=datamodule)
    return timer.median_step()


def shared_overrides(fraction: float, batch_size: int, trainer: str, cache_dir: Path) -> list[str]:
    """What every variant's run shares: the study-shaped corpus at ``fraction``, the batch, the trainer."""
    return ["dataset=synthetic_study", f"dataset.index.scale={fraction}", f"paths.cache_dir={cache_dir}",
            f"training.batch_size={batch_size}", f"trainer={trainer}", "logger=none"]  # fmt: skip


def measure(fraction: float, batches: int, batch_size: int, trainer: str, cache_dir: Path) -> dict:
    """Generate, cache and step at ``fraction`` of the study's corpus; the raw numbers :func:`table` extrapolates."""
    from hydra.utils import instantiate

    common = shared_overrides(fraction, batch_size, trainer, cache_dir)
    cfg = compose(VARIANTS["baseline"] + common, cache_dir / "run")
    start = time.perf_counter()
    clips = instantiate(cfg.dataset.index)
    generate_s = time.perf_counter() - start
    datamodule = instantiate(cfg.datamodule)
    start = time.perf_counter()
    datamodule.setup()
    cache_s = time.perf_counter() - start
    wav_mb = folder_mb(Path(clips[0].path).parent)
    stopping = cfg.callbacks.early_stopping
    result = {
        "fraction": fraction,
        "trainer": trainer,
        "batch_size": batch_size,
        "batches": batches,
        "clips": len(clips),
        "train_clips": len(datamodule.sets["train"]),  # the augmented copies included
        "generate_s": generate_s,
        "wav_mb": wav_mb,
        "cache_s": cache_s,
        "cache_mb": folder_mb(cache_dir) - folder_mb(cache_dir / "synthetic"),  # WAV of every corpus
        "patience": stopping.patience,
        "min_steps": stopping.min_steps,
        "max_epochs": cfg.training.max_epochs,
        "step_s": {},
    }
    for variant, overrides in VARIANTS.items():
        result["step_s"][variant] = step_seconds(compose(overrides + common, cache_dir / "run"), datamodule, batches)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def table(result: dict) -> str:
    """The section's text: what was measured at the fraction, then each variant extrapolated to the whole corpus
    (linearly in clips) and to a converged run."""
    from finser.report import markdown_table

    scale = 1 / result["fraction"]
    train_clips = round(result["train_clips"] * scale)
    batch_size = result["batch_size"]
    steps_per_epoch = math.ceil(train_clips / batch_size)
    epochs = converged_epochs(train_clips, batch_size, result["patience"], result["min_steps"], result["max_epochs"])
    rows = [
        [variant, fmt(seconds), f"{steps_per_epoch:,}", fmt(seconds * steps_per_epoch),
         fmt(seconds * steps_per_epoch * epochs / 3600)]
        for variant, seconds in result["step_s"].items()
    ]  # fmt: skip
    lines = [
        f"Measured on {result['clips']:,} clips ({result['fraction']:g} of the study's {STUDY_CLIPS:,}; "
        f"{result['train_clips']:,} training clips with the augmented copies), `trainer={result['trainer']}`, batch "
        f"{batch_size}, median of {result['batches']} steps per variant; the rest extrapolated linearly to the whole "
        "corpus (× " + fmt(scale) + ").\n",
        markdown_table(
            ["measure", f"at {result['fraction']:g}", "whole corpus (linear)"],
            [
                ["generate the corpus (s)", fmt(result["generate_s"]), fmt(result["generate_s"] * scale)],
                ["its WAV files (MB)", fmt(result["wav_mb"]), fmt(result["wav_mb"] * scale)],
                ["build the decoded + augmented cache (s)", fmt(result["cache_s"]), fmt(result["cache_s"] * scale)],
                ["the cache on disk (MB)", fmt(result["cache_mb"]), fmt(result["cache_mb"] * scale)],
                ["peak RSS of the section (MB)", fmt(result["peak_rss_mb"]), "—"],
            ],
        ),
        "",
        f"A converged run assumed {epochs} epochs: the best epoch once {CLIPS_TO_CONVERGE:,} clips were seen (the "
        f"embedded corpus's head, docs/ser.md) and no earlier than min_steps {result['min_steps']}, then patience "
        f"{result['patience']} (conf/experiment/ser_common.yaml), capped at {result['max_epochs']}; "
        f"{train_clips:,} training clips, {steps_per_epoch:,} steps an epoch. Training steps only (validation adds "
        "a forward pass over the val clips each epoch).\n",
        markdown_table(["variant", "s / step", "steps / epoch", "s / epoch", "converged run (h)"], rows),
    ]
    return "\n".join(lines)


def run(fraction: float, batches: int, timeout: int, batch_size: int = 32, trainer: str = "cpu") -> dict:
    """``python -m benchmarks.scale`` in a process of its own: its dict, or ``{"error": ...}``."""
    options = [f"fraction={fraction}", f"batches={batches}", f"batch_size={batch_size}", f"trainer={trainer}"]
    return section_process("benchmarks.scale", options, timeout)


def markdown(result: dict) -> str:
    return f"**Pending**: {result['error']}." if "error" in result else table(result)


def scale_command(arguments: list[str]) -> int:
    from benchmarks.timing import set_threads

    options = parse_keys(arguments, KEYS, USAGE)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train.py runs: idle OpenMP threads sleep on shared cores
    if options["trainer"] == "cpu":
        set_threads()
    with tempfile.TemporaryDirectory(prefix="finser-scale-") as temporary:
        cache_dir = Path(options["cache_dir"] or temporary)
        result = measure(options["fraction"], options["batches"], options["batch_size"], options["trainer"], cache_dir)
    text = table(result)
    print(text + "\n\n" + json.dumps(result))
    if options["json"] is not None:
        Path(options["json"]).write_text(json.dumps(result, indent=2))
    if options["markdown"] is not None:
        Path(options["markdown"]).write_text(text + "\n")
    return 0


def main(arguments: list[str]) -> int:
    return exit_code(lambda: scale_command(arguments))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

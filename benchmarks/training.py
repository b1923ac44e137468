"""Section 3, training throughput: FIN training steps (frames/s) and SER steps (clips/s) through the real modules,
and the FIN data module's loaders beside the steps they feed."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks import REPO
from benchmarks.callbacks import timed_fit
from benchmarks.fins import fin_variants
from benchmarks.heads import head_config
from benchmarks.timing import at_threads, best_time, fmt
from finser.report import markdown_table

NO_GPU = "not measured: no GPU lent"


def fit_steps(task, loader, steps: int) -> float:
    """Seconds per training step through a real Lightning Trainer (CPU, no logger, no checkpoints)."""
    return timed_fit(task, steps, train_dataloaders=loader).per_step()


def run(frames, clips, quick: bool) -> dict:
    """FIN training frames/s per variant (batches of ``frames``), SER clips/s on ``clips`` and the FIN data
    module's loader rates."""
    import functools

    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from finser import features
    from finser.tasks.fin import FINTask

    fin = {}
    for feature in features.REGISTERED_FEATURES:
        for arch, build in fin_variants(feature).items():
            batch_size = 64 if arch == "conv" else 256
            steps = 3 if arch == "conv" else (5 if quick else 8)
            torch.manual_seed(0)
            task = FINTask(build(), functools.partial(torch.optim.Adam), lr=1e-3)
            task.fit_target_statistics(frames[:2048].contiguous())
            # One gather per batch, so each step's time is the model's own, not a per-frame loader's.
            batches = BatchSampler(RandomSampler(frames), batch_size, drop_last=True)
            loader = DataLoader(frames, batch_size=None, sampler=batches)
            two = batch_size / fit_steps(task, loader, steps)
            one = at_threads(1, lambda task=task, loader=loader, steps=steps: fit_steps(task, loader, steps))
            fin[f"{feature}/{arch}"] = {
                "batch_size": batch_size,
                "frames_per_s": two,
                "frames_per_s_1_thread": batch_size / one,
            }
    return {"fin": fin, "ser": ser_steps(clips, quick), "loading": loader_rates()}


def ser_steps(clips, quick: bool) -> dict:
    """SER training steps (forward, backward, Adam) on whole 2.5-s clips, the study's conv1d head."""
    import functools

    import numpy as np
    import torch

    try:
        from hydra.utils import instantiate

        from finser.models.ser import ExactFrontEnd, FINFrontEnd, SERModel
    except ImportError as error:
        return {"error": f"SER model not available: {error}"}
    conv1d = head_config("conv1d")
    waveforms = torch.from_numpy(np.stack(clips[:32]))
    labels = torch.arange(len(waveforms)) % 8
    results = {}
    front_ends = {
        "exact features (baseline)": ExactFrontEnd,
        "spectral FINs, fine-tuned": lambda: FINFrontEnd("spectral"),
    }
    for name, front_end in front_ends.items():
        torch.manual_seed(0)
        model = SERModel(front_end(), instantiate(conv1d))
        optimizer = functools.partial(torch.optim.Adam, lr=1e-3)(model.parameters())

        def step(model=model, optimizer=optimizer) -> None:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(waveforms), labels)
            loss.backward()
            optimizer.step()

        results[name] = {
            "batch_size": len(waveforms),
            "clips_per_s": len(waveforms) / best_time(step, 2 if quick else 3),
            "clips_per_s_1_thread": at_threads(1, lambda step=step: len(waveforms) / best_time(step, 2)),
        }
    results["study conv FINs, fine-tuned"] = {"clips_per_s": None, "note": "not run: ~1.6 GFLOP per frame × 104 frames"}
    return results


def loader_rates(repeats: int = 3) -> dict:
    """One epoch of the FIN data module's loaders (torch at 1 thread) over the default synthetic corpus.

    The default run's frames (decoded cache read into RAM: ``FrameSet``, as every set fits ``ram_budget_mb``) and
    frames served from the cache on disk (``CachedFrameSet``: sets beyond the budget, the full-scale case), each
    through the module's DataLoader (a batch per ``__getitems__``) and through the per-item path it replaced. For the
    on-disk set, also the verification ``setup`` does once per process (crc32 and finite samples of every entry),
    against one epoch of the same set.
    """
    import functools

    from torch.utils.data import DataLoader, Dataset

    from finser.data.frames import FrameDataModule
    from finser.data.sampling import EpochSampler
    from finser.data.splits import speaker_split
    from finser.data.synthetic import build_synthetic_corpus

    class PerItem(Dataset):
        """The path before batching: one ``__getitem__`` per frame, then ``default_collate`` stacks them."""

        def __init__(self, frames) -> None:
            self.frames = frames

        def __len__(self) -> int:
            return len(self.frames)

        def __getitem__(self, index: int):
            return self.frames[index]

    def epoch_rate(loader, n_frames: int) -> float:
        return at_threads(1, lambda: n_frames / best_time(lambda: sum(len(batch) for batch in loader), repeats))

    cache_dir = Path(os.environ.get("FINSER_CACHE", REPO / ".cache"))
    clips = build_synthetic_corpus(cache_dir / "synthetic", seed=0, n_speakers=12, clips_per_emotion=6)
    split = functools.partial(speaker_split, seed=0, fractions=(0.7, 0.15, 0.15))
    results: dict = {}
    for name, ram_budget_mb in (("default", 1024), ("on_disk", 0)):
        module = FrameDataModule(clips, split, batch_size=256, cache_dir=str(cache_dir), ram_budget_mb=ram_budget_mb)
        module.setup()
        train, val = module.sets["train"], module.sets["val"]
        per_item = DataLoader(PerItem(train), batch_size=256, sampler=EpochSampler(len(train), 0))
        results[name] = {
            "set": type(train).__name__,
            "train_frames": len(train),
            "frames_per_s": epoch_rate(module.train_dataloader(), len(train)),
            "per_item_frames_per_s": epoch_rate(per_item, len(train)),
            "in_order_frames_per_s": epoch_rate(module.val_dataloader(), len(val)),
        }
        if name == "on_disk":
            results[name] |= verification_cost(train, results[name]["frames_per_s"], repeats)
    return results


def verification_cost(frames, frames_per_s: float, repeats: int) -> dict:
    """Seconds to verify a disk-served set's entries as a new process's ``setup`` does (their keys already known),
    and that as a percentage of one epoch of the set at ``frames_per_s``."""

    def verify() -> None:
        frames.cache.verified.clear()
        assert frames.cache.ensure(frames.paths) == {}

    verify_s, epoch_s = best_time(verify, repeats), len(frames) / frames_per_s
    return {"verify_s": verify_s, "epoch_s": epoch_s, "verify_percent_of_epoch": 100 * verify_s / epoch_s}


def markdown(result: dict) -> str:
    """The section's text: FIN steps beside the loader's rate, the loaders alone, verification, SER steps."""
    loading = result["loading"]
    default, on_disk = loading["default"]["frames_per_s"], loading["on_disk"]["frames_per_s"]
    verification = loading["on_disk"]
    fastest_fin = max(max(row["frames_per_s"], row["frames_per_s_1_thread"]) for row in result["fin"].values())
    training_epoch_s = verification["train_frames"] / fastest_fin
    fin_rows = []
    for key, row in result["fin"].items():
        feature, arch = key.split("/")
        fastest = max(row["frames_per_s"], row["frames_per_s_1_thread"])
        fin_rows.append(
            [
                feature,
                arch,
                row["batch_size"],
                fmt(row["frames_per_s"]),
                fmt(row["frames_per_s_1_thread"]),
                NO_GPU,
                *(f"{fmt(rate / fastest)}×" + (" ⚠" if rate < 5 * fastest else "") for rate in (default, on_disk)),
            ]
        )
    labels = {"default": "the default run (cache read into RAM)", "on_disk": "from the cache on disk (full scale)"}
    loading_rows = [
        [
            f"{labels[name]}: `{row['set']}`",
            f"{row['train_frames']:,}",
            fmt(row["frames_per_s"]),
            fmt(row["per_item_frames_per_s"]),
            f"{fmt(row['frames_per_s'] / row['per_item_frames_per_s'])}×",
            fmt(row["in_order_frames_per_s"]),
        ]
        for name, row in loading.items()
    ]
    ser_rows = []
    for name, row in result["ser"].items():
        if name == "error":
            ser_rows.append([row, "—", "—", "—"])
            continue
        if row.get("clips_per_s") is None:
            ser_rows.append([name, row.get("note", "—"), "—", NO_GPU])
        else:
            ser_rows.append([name, fmt(row["clips_per_s"]), fmt(row["clips_per_s_1_thread"]), NO_GPU])
    header = [
        "feature", "arch", "batch", "CPU frames/s (2 thr)", "(1 thr)", "GPU", "default loader ÷ model",
        "on-disk loader ÷ model",
    ]  # fmt: skip
    loading_header = [
        "frames", "train frames", "train loader frames/s (batched)", "per-item path (before)", "speed-up",
        "in-order val loader frames/s",
    ]  # fmt: skip
    return "\n".join(
        [
            "Training steps through a real Lightning Trainer (Adam, targets computed on the fly, CPU; best step of "
            "several; batches come ready-made, one gather each, so a step times the model alone). Loader ratios: the "
            "FIN data module's train loader rate (below) ÷ the step's faster consumption (goal ≥ 5×).\n",
            markdown_table(header, fin_rows),
            "",
            "FIN data loading alone (default synthetic corpus, batch 256, `EpochSampler` order, torch at 1 thread, "
            "best epoch of several). Batched: the module's DataLoader, one `__getitems__` per batch (a row gather "
            "from the signal's window view in RAM; from the cache on disk, where the train order shuffles runs of "
            "`disk_run_frames` = 16 touching frames, one `os.pread` per run and one gather from the spans). Per-item: "
            "256 `__getitem__` calls and `default_collate`, one frame per read, as before.\n",
            markdown_table(loading_header, loading_rows),
            "",
            f"Verifying the on-disk train set before its first use (crc32 and finite samples of each entry, once per "
            f"process in `setup`): {fmt(1000 * verification['verify_s'])} ms = "
            f"{fmt(verification['verify_percent_of_epoch'])}% of one disk-served epoch of that set through the "
            f"loader alone ({fmt(1000 * verification['epoch_s'])} ms; goal ≤ 5%), "
            f"{fmt(100 * verification['verify_s'] / training_epoch_s)}% of one training epoch at the fastest FIN "
            f"step rate above ({fmt(fastest_fin)} frames/s).",
            "",
            "SER training steps (batch 32 clips of 2.5 s, conv1d head, forward + backward + Adam):\n",
            markdown_table(["front-end", "CPU clips/s (2 thr)", "(1 thr)", "GPU"], ser_rows),
        ]
    )

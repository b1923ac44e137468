"""finser's benchmark: feature targets, FIN cost, training throughput, start-up and the data pipeline.

    python scripts/bench.py [--out outputs/bench] [--quick] [--skip-startup] [--skip-data] [--baseline-rev REV]

Every ratio is measured side by side in one run, on the same inputs, with the same threads (torch, MKL, OpenMP and
numba at 2): each timing is the best of several repeats, so other work on the machine inflates numbers rather than
deflates them; the features' speed-ups over librosa are medians of ratios taken turn by turn (``side_by_side``).
Writes ``bench.md`` (the tables) and ``bench.json`` (the same numbers) under ``--out``.

Sections: (1) exact features (``finser.features``) vs librosa per file and per 2048-sample frame, plus
the torch code of ``--baseline-rev`` (the first, unoptimised version) for before/after; (2) each FIN's parameters,
FLOPs per frame and frames/s beside the study's; (3) training steps per second (FIN frames/s, SER clips/s) and the
FIN data loader's rate; (4) ``python train.py`` to its first training step; (5) ``scripts/bench_data.py``'s table
(decode/augment throughput, peak RSS serving the full-scale union); (6) ``python predict.py`` on a generated 60-minute
file: its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
Result = TypeVar("Result")
THREADS = 2
BASELINE_REV = "56aec3a"  # the foundation commit: the first, unoptimised torch features
STUDY = {  # paper.md: the study's FINs (parameters, multiply-accumulates per frame) and test R²
    "zcr": {"params": 263_000, "macs": 0.39e6, "r2": 0.93},
    "rms": {"params": 66_000, "macs": 0.07e6, "r2": 0.98},
    "chroma": {"params": 900_000, "macs": 202e6, "r2": 0.93},
    "mfcc": {"params": 822_000, "macs": 202e6, "r2": 0.92},
    "melspec": {"params": 983_000, "macs": 404e6, "r2": 0.97},
}
ARCHS = ("spectral", "fc", "conv")
EXACT = "spectral, stride=1"  # RMS/ZCR reading every sample: the 'before' of the strided defaults
STRIDED = ("rms", "zcr")
NO_GPU = "not measured: no GPU lent"


def set_threads() -> None:
    """Pin every thread pool before numpy, numba or torch start one."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(THREADS)


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


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict:
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


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def speech_like_clips(n_clips: int, seconds: float = 2.5, seed: int = 0) -> list:
    """Voiced harmonics with a gliding pitch and formant-like emphasis, noise bursts and pauses: 22,050 Hz float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    length = int(seconds * 22_050)
    time_axis = np.arange(length) / 22_050
    clips = []
    for _ in range(n_clips):
        f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * time_axis))
        phase = 2 * np.pi * np.cumsum(f0) / 22_050
        formants = rng.uniform([300, 900, 2200], [900, 2200, 3500])
        voiced = sum(
            np.sin(k * phase) * sum(np.exp(-(((k * f0) - f) ** 2) / (2 * 150.0**2)) for f in formants) / k**0.5
            for k in range(1, 40)
        )
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(1, 4) * time_axis + rng.uniform(0, 6)), 0, None) ** 0.5
        noise = rng.standard_normal(length) * (rng.uniform(size=length // 512 + 1).repeat(512)[:length] > 0.8)
        signal = 0.3 * voiced * envelope + 0.02 * noise
        clips.append((signal / max(1e-9, np.abs(signal).max()) * rng.uniform(0.05, 0.9)).astype(np.float32))
    return clips


def load_features_at(revision: str):
    """``finser/features.py`` as of ``revision`` (git), imported as its own module; None when git cannot."""
    import importlib.util

    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:src/finser/features.py"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp(prefix="finser-bench-")) / f"features_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"features_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------------------------
# 1. Feature targets


def librosa_per_file(signal) -> dict:
    """All five features of one file as a careful user computes them: one STFT shared by the spectral ones."""
    import librosa
    import numpy as np

    from finser.features import HOP_LENGTH, N_FFT, N_MELS, N_MFCC, SAMPLE_RATE

    spectrum = librosa.stft(signal, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False)
    magnitude = np.abs(spectrum)
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=N_MELS)
    return {
        "zcr": librosa.feature.zero_crossing_rate(signal, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False),
        "rms": librosa.feature.rms(y=signal, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False),
        "chroma": librosa.feature.chroma_stft(S=magnitude, sr=SAMPLE_RATE, tuning=0.0, n_fft=N_FFT),
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=N_MFCC),
        "melspec": mel,
    }


def librosa_one_feature(feature: str, signal):
    """One feature of one file through its own librosa call (its own STFT)."""
    import librosa

    from finser.features import HOP_LENGTH, N_FFT, SAMPLE_RATE

    common = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "center": False}
    if feature == "zcr":
        return librosa.feature.zero_crossing_rate(signal, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)
    if feature == "rms":
        return librosa.feature.rms(y=signal, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)
    if feature == "chroma":
        return librosa.feature.chroma_stft(y=signal, sr=SAMPLE_RATE, tuning=0.0, **common)
    if feature == "mfcc":
        return librosa.feature.mfcc(y=signal, sr=SAMPLE_RATE, n_mfcc=20, **common)
    return librosa.feature.melspectrogram(y=signal, sr=SAMPLE_RATE, **common)


def at_threads(threads: int, function: Callable[[], Result]) -> Result:
    """``function()`` with torch's intra-op pool at ``threads``, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return function()
    finally:
        torch.set_num_threads(before)


def bench_features(clips: list, repeats: int, n_per_frame: int, baseline, label: str) -> dict:
    import numpy as np
    import torch

    from finser import features

    signals = [torch.from_numpy(clip) for clip in clips]
    per_file = [features.frame_signal(signal) for signal in signals]
    batch = torch.cat(per_file)
    n_frames = len(batch)
    frames_np = batch.numpy()
    subset = frames_np[:: max(1, n_frames // n_per_frame)][:n_per_frame]

    def rates(contenders: dict[str, Callable[[], object]], reference: str, key: str) -> dict[str, dict]:
        """frames/s of each contender (its fastest turn) and, under ``key``, its speed-up over ``reference`` (the
        median of the turns' ratios, and their range under ``key + "_range"``), with torch at 2 threads (the
        benchmark's setting) and at 1 (immune to other work on the second core); librosa runs on one thread
        either way."""
        measured = {}
        for suffix, threads in (("", THREADS), ("_1_thread", 1)):
            seconds = at_threads(threads, lambda: side_by_side(contenders, repeats))
            for name, turns in seconds.items():
                ratios = paired_ratios(turns, seconds[reference])
                row = measured.setdefault(name, {})
                row["frames_per_s" + suffix] = n_frames / min(turns)
                row[key + suffix] = statistics.median(ratios)
                row[key + "_range" + suffix] = (ratios[0], ratios[-1])
        return measured

    per_file_name, per_frame_name = (
        "librosa per file (one shared STFT)",
        "librosa per 2048-sample frame (the study's way)",
    )
    contenders = {
        "finser compute_all, per file": lambda: [features.compute_all(f) for f in per_file],
        f"finser compute_all, one batch of {n_frames:,} frames": lambda: features.compute_all(batch),
    }
    if baseline is not None:
        contenders[f"before ({label}) compute_all, per file"] = lambda: [baseline.compute_all(f) for f in per_file]
        contenders[f"before ({label}) compute_all, one batch"] = lambda: baseline.compute_all(batch)
    contenders[per_file_name] = lambda: [librosa_per_file(clip) for clip in clips]
    rows = rates(contenders, per_file_name, "vs_librosa_per_file")
    # Per-frame librosa is ~100x slower than per file: a drift of the VM's speed does not change its verdict.
    librosa_frame = len(subset) / best_time(lambda: [features.reference_features(f) for f in subset], 2)
    rows[per_frame_name] = {"frames_per_s": librosa_frame, "frames_per_s_1_thread": librosa_frame}
    for suffix in ("", "_1_thread"):
        ratio = librosa_frame / rows[per_file_name]["frames_per_s" + suffix]
        rows[per_frame_name] |= {
            "vs_librosa_per_file" + suffix: ratio,
            "vs_librosa_per_file_range" + suffix: (ratio, ratio),
        }
    for row in rows.values():
        for suffix in ("", "_1_thread"):
            row["vs_librosa_per_frame" + suffix] = row["frames_per_s" + suffix] / librosa_frame

    # Agreement with librosa's per-frame values (the tests' tolerance is 1e-3 of each feature's scale).
    reference = {name: np.stack([features.reference_features(f)[name] for f in subset]) for name in features.FEATURES}
    ours = features.compute_all(torch.from_numpy(np.ascontiguousarray(subset)))
    agreement = {
        name: float(np.abs(ours[name].numpy() - reference[name]).max() / max(np.abs(reference[name]).max(), 1e-12))
        for name in features.FEATURES
    }

    alone = {}
    for name in features.FEATURES:
        one_feature = {
            "finser": lambda name=name: [features.compute(name, f) for f in per_file],
            "librosa": lambda name=name: [librosa_one_feature(name, clip) for clip in clips],
        }
        if baseline is not None:
            one_feature["before"] = lambda name=name: [baseline.compute(name, f) for f in per_file]
        measured = rates(one_feature, "librosa", "vs_librosa")
        alone[name] = {
            "finser_frames_per_s": measured["finser"]["frames_per_s"],
            "finser_frames_per_s_1_thread": measured["finser"]["frames_per_s_1_thread"],
            "librosa_frames_per_s": measured["librosa"]["frames_per_s"],
            "vs_librosa": measured["finser"]["vs_librosa"],
            "vs_librosa_1_thread": measured["finser"]["vs_librosa_1_thread"],
        }
        if baseline is not None:
            alone[name]["before_frames_per_s"] = measured["before"]["frames_per_s"]
            alone[name]["before_frames_per_s_1_thread"] = measured["before"]["frames_per_s_1_thread"]
    return {
        "before_label": label,
        "n_files": len(clips),
        "n_frames": n_frames,
        "n_per_frame": len(subset),
        "repeats": repeats,
        "all_five": rows,
        "alone": alone,
        "max_error_over_scale": agreement,
    }


def speed_up(median: float, extremes: tuple[float, float]) -> str:
    """A median speed-up and the range of the turns' ratios, e.g. "12.0× (9.8–13.1)"; no range when they agree."""
    low, high = extremes
    spread = f" ({fmt(low)}–{fmt(high)})" if fmt(low) != fmt(high) else ""
    return f"{fmt(median)}×{spread}"


def features_markdown(result: dict) -> str:
    rows = [
        [
            name,
            fmt(row["frames_per_s"]),
            speed_up(row["vs_librosa_per_file"], row["vs_librosa_per_file_range"]),
            fmt(row["vs_librosa_per_frame"]) + "×",
            fmt(row["frames_per_s_1_thread"]),
            speed_up(row["vs_librosa_per_file_1_thread"], row["vs_librosa_per_file_range_1_thread"]),
            fmt(row["vs_librosa_per_frame_1_thread"]) + "×",
        ]
        for name, row in result["all_five"].items()
    ]
    header = [
        "method", "frames/s (2 threads)", "vs librosa per file", "vs librosa per frame",
        "frames/s (torch 1 thread)", "vs per file", "vs per frame",
    ]  # fmt: skip
    text = [
        f"All five features (162 values per frame) of {result['n_files']} generated speech-like clips of 2.5 s "
        f"({result['n_frames']:,} frames, center=False); per-frame librosa on {result['n_per_frame']} of them. "
        "librosa runs on one thread either way; the 1-thread columns (torch's FFT on one thread; the compiled "
        "passes always run on one) are immune to other work on the second core. The contenders take turns "
        f"({result['repeats']} turns per thread setting): frames/s is each one's fastest turn; a speed-up over librosa "
        "per file is the median of the turns' ratios (range in brackets), each ratio of two calls seconds apart, "
        "so a drift of the machine's speed hits both sides alike.\n",
        table(header, rows),
        "",
        "Each feature alone, per file (`compute(feature, frames)` vs that feature's own librosa call):\n",
    ]
    before = any("before_frames_per_s" in row for row in result["alone"].values())
    header = ["feature", "finser frames/s (2 thr / 1 thr)", "librosa frames/s", "finser ÷ librosa (2 thr / 1 thr)"]
    header += [f"before ({result['before_label']}) frames/s (2 / 1)", "speed-up (2 / 1)"] if before else []
    alone_rows = []
    for name, row in result["alone"].items():
        two, one = row["finser_frames_per_s"], row["finser_frames_per_s_1_thread"]
        cells = [name, f"{fmt(two)} / {fmt(one)}", fmt(row["librosa_frames_per_s"])]
        cells.append(f"{fmt(row['vs_librosa'])}× / {fmt(row['vs_librosa_1_thread'])}×")
        if before:
            before_two, before_one = row["before_frames_per_s"], row["before_frames_per_s_1_thread"]
            cells += [f"{fmt(before_two)} / {fmt(before_one)}", f"{fmt(two / before_two)}× / {fmt(one / before_one)}×"]
        alone_rows.append(cells)
    text.append(table(header, alone_rows))
    errors = ", ".join(f"{name} {value:.1e}" for name, value in result["max_error_over_scale"].items())
    text.append(f"\nLargest |finser − librosa per frame| / feature scale: {errors} (tests allow 1e-3).")
    return "\n".join(text)


# ----------------------------------------------------------------------------------------------------------------
# 2. FIN cost


def fin_variants(feature: str) -> dict:
    """arch label → builder: the three ``fin_arch`` options, plus the exact (stride=1) variant for RMS and ZCR."""
    from finser.models.fin import spectral_fin, study_fin

    variants = {
        "spectral": lambda: spectral_fin(feature),
        EXACT: lambda: spectral_fin(feature, stride=1),
        "fc": lambda: study_fin(feature, convolutional=False),
        "conv": lambda: study_fin(feature, convolutional=True),
    }
    if feature not in STRIDED:
        del variants[EXACT]
    return variants


def published_r2(feature: str, arch: str, net) -> float | None:
    """Test R² of ``outputs/fins/<feature>_<arch>.ckpt``, if that file holds a net of ``net``'s shape.

    A file published before a change of shape (RMS/ZCR before their stride) says nothing about today's FIN.
    """
    import copy

    from finser.errors import FinserError
    from finser.models.checkpoint import read_checkpoint

    path = REPO / "outputs" / "fins" / f"{feature}_{arch}.ckpt"
    try:
        payload = read_checkpoint(path)
        copy.deepcopy(net).load_state_dict(payload["state_dict"])
    except (FinserError, KeyError, RuntimeError):
        return None
    return payload["meta"].get("metrics", {}).get("test/r2")


def white_noise(n_frames: int):
    """Frames of white noise at levels spread over 60 dB: RMS varies, ZCR stays ≈ 0.5 (± its sampling noise)."""
    import numpy as np
    import torch

    generator = np.random.default_rng(0)
    levels = np.exp(generator.uniform(np.log(1e-3), 0.0, size=(n_frames, 1)))
    return torch.from_numpy((generator.standard_normal((n_frames, 2048)) * levels).astype(np.float32))


def r2_score(predictions, targets) -> float:
    """Variance-weighted R² over outputs (plain R² for one output), as the FIN task reports."""
    residual = ((predictions - targets) ** 2).sum()
    total = ((targets - targets.mean(dim=0)) ** 2).sum()
    return float(1 - residual / total)


def bench_fins(frames, repeats: int) -> dict:
    import torch

    from finser import features
    from finser.models.cost import count_operations

    results = {}
    probe = frames[:16].contiguous()
    targets_all = features.compute_all(frames)
    noise = white_noise(2048)
    noise_targets = features.compute_all(noise)
    for feature in features.FEATURES:
        for arch, build in fin_variants(feature).items():
            torch.manual_seed(0)
            net = build().eval()
            flops, elementwise = count_operations(net, probe)
            n = 64 if arch == "conv" else 256
            batch = frames[:n].contiguous()
            with torch.no_grad():
                repeats_here = max(2, repeats // (3 if arch == "conv" else 1))
                seconds = best_time(lambda net=net, batch=batch: net(batch), repeats_here)
                seconds_1 = at_threads(1, lambda net=net, batch=batch, r=repeats_here: best_time(lambda: net(batch), r))
                spectral = arch.startswith("spectral")
                init_r2 = r2_score(net(frames), targets_all[feature]) if spectral else None
                noise_predictions = net(noise) if spectral else None
            results[f"{feature}/{arch}"] = {
                "feature": feature,
                "arch": arch,
                "params": sum(p.numel() for p in net.parameters()),
                "flops_per_frame": flops / len(probe),
                "all_ops_per_frame": (flops + elementwise) / len(probe),
                "frames_per_s": n / seconds,
                "frames_per_s_1_thread": n / seconds_1,
                "r2_at_init": init_r2,
                "r2_at_init_white_noise": None,
                "relative_error_white_noise": None,
                "r2_published": published_r2(feature, arch, net),
            }
            if noise_predictions is not None:
                target, error = noise_targets[feature], (noise_predictions - noise_targets[feature]).abs()
                results[f"{feature}/{arch}"] |= {
                    "r2_at_init_white_noise": r2_score(noise_predictions, target),
                    "relative_error_white_noise": float(error.mean() / target.abs().mean()),
                }
    return results


def mflop(flops: float) -> str:
    """MFLOP with three significant figures, also below 0.001 (the strided RMS FIN needs ~0.0008)."""
    return fmt(flops / 1e6) if flops >= 1e6 else f"{flops / 1e6:.3g}"


def fins_markdown(results: dict) -> str:
    rows = []
    for row in results.values():
        study = STUDY[row["feature"]]
        study_flops = 2 * study["macs"]
        r2 = row["r2_published"]
        rows.append(
            [
                row["feature"],
                row["arch"],
                f"{row['params']:,}",
                mflop(row["flops_per_frame"]),
                mflop(row["all_ops_per_frame"]),
                f"{study['params'] / 1e3:,.0f} K / {fmt(study_flops / 1e6)}",
                fmt(study_flops / row["flops_per_frame"]) + "×" if row["flops_per_frame"] else "— (no mm)",
                fmt(study_flops / row["all_ops_per_frame"]) + "×",
                f"{fmt(row['frames_per_s'])} / {fmt(row['frames_per_s_1_thread'])}",
                "—" if r2 is None else f"{r2:.4f}",
                "—" if row["r2_at_init"] is None else f"{row['r2_at_init']:.4f}",
                "—"
                if row["r2_at_init_white_noise"] is None
                else f"{row['r2_at_init_white_noise']:.4f} / {100 * row['relative_error_white_noise']:.1f} %",
                f"{study['r2']:.2f}",
            ]
        )
    header = [
        "feature", "arch", "params", "MFLOP/frame (matmul+conv)", "MFLOP/frame (all ops)",
        "study params / MFLOP", "study ÷ ours (matmul)", "study ÷ ours (all ops)",
        "inference frames/s (2 thr / 1 thr)", "test R² (published)", "R² at init", "white noise: R² / error at init",
        "study R²",
    ]  # fmt: skip
    return "\n".join(
        [
            "FLOPs from `torch.utils.flop_counter.FlopCounterMode`, which counts matmuls and convolutions only (2 per "
            "multiply-add; not matrix-vector products); 'all ops' adds those (2 per multiply-add) and one per "
            "element written by every other op (pointwise) or read (reductions, max-pool excluded), "
            "transcendental functions counted as one. The study's MFLOP = 2 × its MACs "
            "(paper.md). Published R²: `outputs/fins/<feature>_<arch>.ckpt` (test split of the corpus it was "
            "trained on, synthetic unless re-run; '—' where the file holds another shape, e.g. RMS/ZCR published "
            "before their stride); R² at init: the spectral FIN before any training, on the benchmark's clips. "
            "White noise: 2,048 frames at levels spread over 60 dB, R² and mean |error| ÷ mean |target|; its ZCR "
            "is ≈ 0.5 in every frame, varying only by the sampling noise of 2,047 pairs (± 0.011), so the strided "
            "ZCR's R² there compares sampling noise with sampling noise (its error stays ~3 %). `spectral, "
            "stride=1`: RMS/ZCR reading every sample (pair), the exact variant and the cost before the stride. "
            "Inference frames/s at batch 256 (conv: 64).\n",
            table(header, rows),
        ]
    )


# ----------------------------------------------------------------------------------------------------------------
# 3. Training throughput and data loading


def step_timer():
    """A Lightning callback that records the time at the end of every training batch."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
            self.times.append(time.perf_counter())

        def per_step(self) -> float:
            gaps = [later - earlier for earlier, later in zip(self.times[1:], self.times[2:], strict=False)]
            return min(gaps)  # the first gap can include one-off work; the best step is the machine's rate

    return StepTimer()


def fit_steps(task, loader, steps: int) -> float:
    """Seconds per training step through a real Lightning Trainer (CPU, no logger, no checkpoints)."""
    import lightning as L

    timer = step_timer()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(task, train_dataloaders=loader)
    return timer.per_step()


def bench_training(frames, clips, quick: bool) -> dict:
    import functools

    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from finser import features
    from finser.tasks.fin import FINTask

    fin = {}
    for feature in features.FEATURES:
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
    return {"fin": fin, "ser": bench_ser(clips, quick), "loading": bench_loading()}


def bench_ser(clips, quick: bool) -> dict:
    """SER training steps (forward, backward, Adam) on whole 2.5-s clips, the study's conv1d head."""
    import functools

    import torch
    from omegaconf import OmegaConf

    try:
        from hydra.utils import instantiate

        from finser.models.ser import ExactFrontEnd, FINFrontEnd, SERModel
    except ImportError as error:
        return {"error": f"SER model not available: {error}"}
    head_config = OmegaConf.load(REPO / "conf" / "ser_head" / "conv1d.yaml").net
    waveforms = torch.from_numpy(__import__("numpy").stack(clips[:32]))
    labels = torch.arange(len(waveforms)) % 8
    results = {}
    front_ends = {
        "exact features (baseline)": ExactFrontEnd,
        "spectral FINs, fine-tuned": lambda: FINFrontEnd("spectral"),
    }
    for name, front_end in front_ends.items():
        torch.manual_seed(0)
        model = SERModel(front_end(), instantiate(head_config))
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


def bench_loading(repeats: int = 3) -> dict:
    """One epoch of the FIN data module's loaders (torch at 1 thread) over the default synthetic corpus.

    The default run's frames (decoded cache read into RAM: ``FrameSet``, as every set fits ``ram_budget_mb``) and
    frames served from the cache on disk (``CachedFrameSet``: sets beyond the budget, the full-scale case), each
    through the module's DataLoader (a batch per ``__getitems__``) and through the per-item path it replaced. For the
    on-disk set, also the verification ``setup`` does once per process (crc32 and finite samples of every entry),
    against one epoch of the same set.
    """
    import functools

    from torch.utils.data import DataLoader, Dataset

    from finser.data.frames import EpochSampler, FrameDataModule
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


def training_markdown(result: dict) -> str:
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
            table(header, fin_rows),
            "",
            "FIN data loading alone (default synthetic corpus, batch 256, `EpochSampler` order, torch at 1 thread, "
            "best epoch of several). Batched: the module's DataLoader, one `__getitems__` per batch (a row gather "
            "from the signal's window view in RAM; from the cache on disk, where the train order shuffles runs of "
            "`disk_run_frames` = 16 touching frames, one `os.pread` per run and one gather from the spans). Per-item: "
            "256 `__getitem__` calls and `default_collate`, one frame per read, as before.\n",
            table(loading_header, loading_rows),
            "",
            f"Verifying the on-disk train set before its first use (crc32 and finite samples of each entry, once per "
            f"process in `setup`): {fmt(1000 * verification['verify_s'])} ms = "
            f"{fmt(verification['verify_percent_of_epoch'])}% of one disk-served epoch of that set through the "
            f"loader alone ({fmt(1000 * verification['epoch_s'])} ms; goal ≤ 5%), "
            f"{fmt(100 * verification['verify_s'] / training_epoch_s)}% of one training epoch at the fastest FIN "
            f"step rate above ({fmt(fastest_fin)} frames/s).",
            "",
            "SER training steps (batch 32 clips of 2.5 s, conv1d head, forward + backward + Adam):\n",
            table(["front-end", "CPU clips/s (2 thr)", "(1 thr)", "GPU"], ser_rows),
        ]
    )


# ----------------------------------------------------------------------------------------------------------------
# 4. Start-up


def first_step_timer():
    """Hydra target for ``+callbacks.bench_timer``: writes seconds since ``BENCH_T0`` at the first training batch."""
    import lightning as L

    class FirstStepTimer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_index) -> None:
            if batch_index == 0 and "BENCH_STARTUP_FILE" in os.environ:
                seconds = time.time() - float(os.environ["BENCH_T0"])
                Path(os.environ["BENCH_STARTUP_FILE"]).write_text(json.dumps({"first_step_s": seconds}))

    return FirstStepTimer()


def time_train_py(*overrides: str, cache_dir: str | None = None) -> float | None:
    with tempfile.TemporaryDirectory(prefix="finser-startup-") as temporary:
        stamp = Path(temporary) / "startup.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")]),
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
            "+callbacks.bench_timer._target_=bench.first_step_timer",
            *overrides,
        ]
        env["BENCH_T0"] = repr(time.time())
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not stamp.exists():
            print(result.stderr[-3000:], file=sys.stderr)
            return None
        return json.loads(stamp.read_text())["first_step_s"]


def bench_startup(cold: bool) -> dict:
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


def startup_markdown(result: dict) -> str:
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
        + table(["what", "time"], rows)
    )


# ----------------------------------------------------------------------------------------------------------------
# 5. Data pipeline (scripts/bench_data.py)


def bench_data(scale: float, serve_scale: float, timeout: int) -> dict:
    script = REPO / "scripts" / "bench_data.py"
    if not script.exists():
        return {"pending": "scripts/bench_data.py does not exist yet"}
    with tempfile.TemporaryDirectory(prefix="finser-bench-data-") as temporary:
        out = Path(temporary) / "data.json"
        command = [
            sys.executable,
            str(script),
            "--scale",
            str(scale),
            "--serve-scale",
            str(serve_scale),
            "--json",
            str(out),
        ]
        try:
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"scripts/bench_data.py took over {timeout} s"}
        if result.returncode != 0 or not out.exists():
            return {"error": f"scripts/bench_data.py failed ({result.returncode}): {result.stderr[-1500:]}"}
        return json.loads(out.read_text())


def data_markdown(result: dict) -> str:
    if "pending" in result or "error" in result:
        return f"**Pending**: {result.get('pending') or result.get('error')}."
    rows = [[name, value] for name, value in result.items()]
    peak = max(result.get("serve_peak_rss_mb", 0), result.get("build_peak_rss_mb", 0))
    verdict = "meets" if peak < 4096 else "misses"
    return "\n".join(
        [
            "From `scripts/bench_data.py` (generated union of the four corpora in their real layouts; decode, "
            "resample, crop and augment at `scale`, serve the union × 3 versions at `serve_scale`).\n",
            table(["measure", "value"], rows),
            f"\nPeak RSS {peak:,.0f} MB: {verdict} the < 4 GB goal.",
        ]
    )


# ----------------------------------------------------------------------------------------------------------------
# 6. Predicting a long file


def tiny_ser_checkpoint(path: Path) -> Path:
    """An untrained SER model (exact front-end, the study's conv1d head) published as run.py publishes one."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from finser.data.labels import EMOTIONS
    from finser.models.checkpoint import save_checkpoint

    head = OmegaConf.load(REPO / "conf" / "ser_head" / "conv1d.yaml").net
    config = {"_target_": "finser.models.ser.SERModel", "front_end": {"_target_": "finser.models.ser.ExactFrontEnd"},
              "head": OmegaConf.to_container(head)}  # fmt: skip
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


def predict_peak_rss(arguments: list[str], out: Path) -> dict:
    """``python predict.py ARGUMENTS`` in its own process, stdout to ``out``; its peak RSS as ``wait4`` reports it
    for that one process (``RUSAGE_CHILDREN`` would be the largest of every child so far)."""
    start = time.perf_counter()
    with out.open("w") as stdout, out.with_suffix(".stderr").open("w+") as stderr:
        process = subprocess.Popen([sys.executable, str(REPO / "predict.py"), *arguments], cwd=REPO, stdout=stdout,
                                   stderr=stderr)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        return {
            "returncode": process.returncode,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
            "seconds": round(time.perf_counter() - start, 1),
            "stderr": stderr.read()[-1500:],
        }


def bench_predict(minutes: float = 60, sample_rate: int = 16_000) -> dict:
    """``predict.py`` on one generated file of ``minutes`` (goal: peak RSS under 1 GB for an hour)."""
    with tempfile.TemporaryDirectory(prefix="finser-bench-predict-") as temporary:
        checkpoint = tiny_ser_checkpoint(Path(temporary) / "ser_model.ckpt")
        audio = write_noise(Path(temporary) / "long.wav", minutes, sample_rate)
        result = predict_peak_rss([f"ckpt={checkpoint}", f"audio={audio}"], Path(temporary) / "out.csv")
    return {"minutes": minutes, "sample_rate": sample_rate, **result}


def predict_markdown(result: dict) -> str:
    if result["returncode"] != 0:
        return f"**Failed** (exit {result['returncode']}): {result['stderr']}"
    verdict = "meets" if result["peak_rss_mb"] < 1024 else "misses"
    rows = [[f"{result['minutes']:g} min at {result['sample_rate']:,} Hz", fmt(result["peak_rss_mb"]),
             f"{result['seconds']:.1f} s"]]  # fmt: skip
    return "\n".join(
        [
            "`python predict.py ckpt=... audio=LONG.wav` in its own process (untrained exact-features SER model, white "
            "noise, 16-bit WAV); peak RSS of that process from `wait4`.\n",
            table(["file", "peak RSS (MB)", "wall time"], rows),
            f"\nPeak RSS {result['peak_rss_mb']:,.0f} MB: {verdict} the < 1 GB goal.",
        ]
    )


# ----------------------------------------------------------------------------------------------------------------


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench")
    parser.add_argument("--quick", action="store_true", help="fewer files and repeats (a smoke run)")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--cold-startup", action="store_true", help="also time train.py with an empty cache")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the 'before' features.py")
    parser.add_argument("--data-scale", type=float, default=0.05)
    parser.add_argument("--serve-scale", type=float, default=1.0)
    options = parser.parse_args(arguments)
    set_threads()

    import torch

    torch.set_num_threads(THREADS)
    options.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine()}
    n_files, repeats = (12, 3) if options.quick else (32, 5)
    clips = speech_like_clips(n_files)

    sections: list[tuple[str, str]] = []

    def section(title: str, key: str, run: Callable[[], dict], render: Callable[[dict], str]) -> None:
        start = time.perf_counter()
        print(f"[bench] {title} ...", file=sys.stderr, flush=True)
        results[key] = run()
        results[key + "_bench_s"] = round(time.perf_counter() - start, 1)
        sections.append((title, render(results[key])))
        (options.out / "bench.json").write_text(json.dumps(results, indent=2, default=str))

    baseline = load_features_at(options.baseline_rev)
    section(
        "1. Feature targets",
        "features",
        lambda: bench_features(clips, repeats, 64 if options.quick else 256, baseline, options.baseline_rev),
        features_markdown,
    )
    frames = torch.cat([torch.from_numpy(clip).unfold(0, 2048, 512) for clip in clips]).contiguous()
    section("2. FIN cost per frame", "fins", lambda: bench_fins(frames, repeats), fins_markdown)
    section(
        "3. Training throughput", "training", lambda: bench_training(frames, clips, options.quick), training_markdown
    )
    if not options.skip_startup:
        section("4. Start-up", "startup", lambda: bench_startup(options.cold_startup), startup_markdown)
    if not options.skip_data:
        section(
            "5. Data pipeline and peak RSS",
            "data",
            lambda: bench_data(options.data_scale, options.serve_scale, timeout=300),
            data_markdown,
        )
    else:
        sections.append(("5. Data pipeline and peak RSS", "Skipped (--skip-data)."))
    section("6. Predicting a long file", "predict", bench_predict, predict_markdown)

    info = results["machine"]
    head = [
        "# finser benchmark",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, GPU: {info['gpu']}; torch "
        f"{info['torch']}, librosa {info['librosa']}, Python {info['python']}; {THREADS} threads everywhere. Load "
        f"average at start {tuple(round(x, 2) for x in info['load_average_at_start'])} (other work on the cores "
        "makes timings slower, never faster: each is the best of several repeats).",
    ]
    body = [f"\n## {title}\n\n{text}" for title, text in sections]
    (options.out / "bench.md").write_text("\n".join(head + body) + "\n")
    print("\n".join(head + body))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

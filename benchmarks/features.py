"""Section 1, feature targets: ``finser.features`` vs librosa per file and per 2048-sample frame, and vs the torch
code of ``baseline_rev=`` (the first, unoptimised version) for before/after."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import REPO
from benchmarks.timing import THREADS, at_threads, best_time, fmt, paired_ratios, side_by_side
from finser.report import markdown_table


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


def run(clips: list, repeats: int, n_per_frame: int, baseline, label: str) -> dict:
    """frames/s of all five features and of each alone, finser vs librosa (and ``baseline``, the features module
    of ``label``, when not None), and finser's largest error against librosa per frame."""
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


def markdown(result: dict) -> str:
    """The section's text: what was measured, then the two tables and the agreement with librosa."""
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
        markdown_table(header, rows),
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
    text.append(markdown_table(header, alone_rows))
    errors = ", ".join(f"{name} {value:.1e}" for name, value in result["max_error_over_scale"].items())
    text.append(f"\nLargest |finser − librosa per frame| / feature scale: {errors} (tests allow 1e-3).")
    return "\n".join(text)

"""Published models for runtimes without finser: ONNX (onnxruntime) and TorchScript files, checked at export.

A FIN exports as frames (B, 2048) → its feature (B, dim); an SER model as a waveform (B, samples) at 22,050 Hz →
emotion logits (B, n_emotions), batch and clip length both dynamic. Each file carries what a user needs to feed it
(feature or emotion list, sample rate, window, hop) as ONNX ``metadata_props`` or TorchScript extra files, and is
compared with the PyTorch model on generated audio before the export is reported done.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finser.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE, recorded_clip
from finser.errors import FinserError
from finser.models.checkpoint import load_model

log = logging.getLogger(__name__)

OPSET = 17
TOLERANCE = 1e-4  # max |exported - PyTorch| allowed, relative to 1 + max |PyTorch output| (float32 reordering)
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
ONNX_EXTRA = "pip install 'finser[onnx]' (onnx and onnxruntime)"


def generated_audio(n_clips: int, n_samples: int, seed: int = 0) -> torch.Tensor:
    """Tones with a little noise at speech levels: what the export check feeds both models."""
    generator = np.random.default_rng(seed)
    time = np.arange(n_samples) / SAMPLE_RATE
    frequencies = generator.uniform(100.0, 4000.0, size=(n_clips, 1))
    clips = 0.3 * np.sin(2 * np.pi * frequencies * time) + 0.02 * generator.standard_normal((n_clips, n_samples))
    return torch.from_numpy(clips.astype(np.float32))


def example_inputs(meta: dict[str, Any]) -> list[torch.Tensor]:
    """Two inputs of different batch sizes (and, for SER, lengths): the first is traced, all are checked."""
    if meta["kind"] == "fin":
        return [generated_audio(3, N_FFT), generated_audio(5, N_FFT, seed=1)]
    clip = recorded_clip(meta).n_samples or SAMPLE_RATE
    return [generated_audio(2, clip), generated_audio(3, clip + 3 * HOP_LENGTH + 100, seed=1)]


def metadata(meta: dict[str, Any]) -> dict[str, str]:
    """What a user needs besides the weights: the input's conventions and what the outputs name."""
    common = {"finser_kind": meta["kind"], "sample_rate": str(SAMPLE_RATE), "n_fft": str(N_FFT)}
    if meta["kind"] == "fin":
        return {**common, "feature": str(meta.get("feature")), "input": "frames (batch, 2048) float32",
                "output": "feature (batch, dim) in the feature's own units"}  # fmt: skip
    emotions = list(meta["emotions"])
    return {**common, "hop_length": str(HOP_LENGTH), "emotions": ",".join(emotions),
            "clip_samples": str(recorded_clip(meta).n_samples or ""),
            "input": "audio (batch, samples) float32 mono in [-1, 1], samples >= 2048",
            "output": f"logits (batch, {len(emotions)}) in 'emotions' order; softmax gives probabilities"}  # fmt: skip


def names(meta: dict[str, Any]) -> tuple[str, str, dict[str, dict[int, str]]]:
    """Input name, output name, and their dynamic axes."""
    if meta["kind"] == "fin":
        return "frames", "feature", {"frames": {0: "batch"}, "feature": {0: "batch"}}
    return "audio", "logits", {"audio": {0: "batch", 1: "samples"}, "logits": {0: "batch"}}


def check_close(reference: torch.Tensor, exported: np.ndarray, what: str) -> float:
    """The largest difference, refusing the export when it passes :data:`TOLERANCE`."""
    expected = reference.numpy()
    if exported.shape != expected.shape:
        raise FinserError(f"{what} gives shape {exported.shape} where PyTorch gives {expected.shape}")
    difference = float(np.abs(exported - expected).max())
    limit = TOLERANCE * (1.0 + float(np.abs(expected).max()))
    if not difference <= limit:
        raise FinserError(f"{what} differs from PyTorch by {difference:.3g} (tolerance {limit:.3g}): not exported")
    return difference


def export_onnx(model: nn.Module, meta: dict[str, Any], out: Path) -> float:
    """The model as ONNX with its metadata, checked in onnxruntime; returns the largest difference seen."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise FinserError(f"format=onnx needs the onnx extra: {ONNX_EXTRA}") from error
    inputs = example_inputs(meta)
    input_name, output_name, axes = names(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes are not the user's
        try:
            torch.onnx.export(model, (inputs[0],), str(out), input_names=[input_name], output_names=[output_name],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip
        except torch.onnx.errors.UnsupportedOperatorError as error:  # the exact front-end's FFT (aten::fft_rfft)
            raise FinserError(f"this model cannot be written as ONNX ({error}): use format=torchscript") from error
    proto = onnx.load(str(out))
    for key, value in metadata(meta).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return max(
        check_close(model(example), session.run(None, {input_name: example.numpy()})[0], "onnxruntime")
        for example in inputs
    )


def export_torchscript(model: nn.Module, meta: dict[str, Any], out: Path) -> float:
    """The model traced to TorchScript, its metadata as the extra file ``finser.json``, checked after reloading."""
    inputs = example_inputs(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (inputs[0],), check_trace=False)
    torch.jit.save(traced, str(out), _extra_files={"finser.json": json.dumps(metadata(meta))})
    loaded = torch.jit.load(str(out))
    return max(check_close(model(example), loaded(example).numpy(), "the TorchScript file") for example in inputs)


EXPORTERS: dict[str, Callable[[nn.Module, dict[str, Any], Path], float]] = {
    "onnx": export_onnx,
    "torchscript": export_torchscript,
}


def output_path(checkpoint: Path, format_name: str, out: str | Path | None) -> Path:
    """``out``, or the checkpoint's name with the format's suffix; never the checkpoint itself."""
    path = Path(out) if out else checkpoint.with_suffix(SUFFIXES[format_name])
    if path.resolve() == checkpoint.resolve():
        raise FinserError(f"out={str(path)!r} is the checkpoint itself: pass another path")
    return path


@torch.no_grad()
def export(checkpoint: str | Path, format_name: str, out: str | Path | None = None) -> tuple[Path, float]:
    """Export a published FIN or SER checkpoint; returns the file written and its largest difference from PyTorch."""
    if format_name not in EXPORTERS:
        raise FinserError(f"format={format_name!r}: expected one of {', '.join(EXPORTERS)}")
    checkpoint = Path(checkpoint)
    model, meta = load_model(checkpoint)
    if meta["kind"] not in ("fin", "ser"):
        raise FinserError(f"{checkpoint} holds a {meta['kind']!r} model: export takes a FIN or an SER model")
    path = output_path(checkpoint, format_name, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        difference = EXPORTERS[format_name](model, meta, path)
    except FinserError:
        path.unlink(missing_ok=True)  # a file that failed its check is not left for someone to ship
        raise
    log.info("exported %s to %s (max difference from PyTorch %.3g)", checkpoint, path, difference)
    return path, difference

"""Published models for runtimes without finser: ONNX (onnxruntime) and TorchScript files, checked at export.

A FIN exports as frames (B, 2048) → its feature (B, dim). An SER model exports as :class:`WindowedSER`: a whole
recording (B, samples) at 22,050 Hz, of any length, → what predict.py gives for it (the emotion probabilities
averaged over its windows, and each window's), batch and length both dynamic. Each file carries what a user needs
to feed it (feature or emotion list, sample rate, window, hop) as ONNX ``metadata_props`` or TorchScript extra
files, and is compared with the PyTorch model on generated audio before the export is reported done.
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

from finser.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE, AudioSpec, recorded_clip
from finser.errors import FinserError
from finser.inference import window_count
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


def signal_windows(audio: torch.Tensor, clip_samples: int | None, offset_samples: int = 0) -> torch.Tensor:
    """(B, samples) → (B, windows, clip_samples): the windows predict.py cuts (:func:`finser.inference.from_offset`,
    then :func:`~finser.inference.windows`), in traceable ops: from sample ``offset_samples`` on, or from the start
    for a signal that ends before it. ONNX's Unfold needs a fixed length; a gather of sample indices into the signal
    padded by one clip (enough for the last window, :func:`~finser.inference.window_count`) does not."""
    length = torch._shape_as_tensor(audio)[-1]
    start = offset_samples * (length >= offset_samples).to(length.dtype)
    heard = length - start
    if not clip_samples:  # no clip length recorded: all that is heard is one window, as predict scores it
        return audio[..., start + torch.arange(heard, device=audio.device)].unsqueeze(1)
    count = window_count(heard, clip_samples)
    starts = start + torch.arange(count, device=audio.device) * (clip_samples // 2)
    padded = nn.functional.pad(audio, (0, clip_samples))
    return padded[..., starts.unsqueeze(-1) + torch.arange(clip_samples, device=audio.device)]


def offset_samples(spec: AudioSpec) -> int:
    """Where predict.py's first window starts, in samples: the training crop's offset."""
    return round(spec.offset * spec.sample_rate)


class WindowedSER(nn.Module):
    """An SER model scoring a whole recording as predict.py does: softmax per window, averaged over the windows.

    Returns the averaged probabilities (B, n_emotions) and each window's (B, windows, n_emotions). No band limit:
    predict's is soxr resampling, which is not a tensor op (docs/predicting.md says what a caller does instead).
    """

    def __init__(self, model: nn.Module, clip_samples: int | None, offset_samples: int = 0) -> None:
        super().__init__()
        self.model, self.clip_samples, self.offset_samples = model, clip_samples, offset_samples

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows = signal_windows(audio, self.clip_samples, self.offset_samples)
        batch, count = windows.shape[:2]
        logits = self.model(windows.reshape(batch * count, windows.shape[-1]))
        probabilities = torch.softmax(logits, dim=-1).reshape(batch, count, -1)
        return probabilities.mean(dim=1), probabilities


def exported_module(model: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """What is written: a FIN as it is, an SER model inside :class:`WindowedSER`."""
    if meta["kind"] == "fin":
        return model
    spec = recorded_clip(meta)
    return WindowedSER(model, spec.n_samples, offset_samples(spec)).eval()


def example_inputs(meta: dict[str, Any]) -> list[torch.Tensor]:
    """Inputs of different batch sizes (and, for SER, lengths: several windows, less than one, one more than a
    whole number of hops): the first is traced, all are checked."""
    if meta["kind"] == "fin":
        return [generated_audio(3, N_FFT), generated_audio(5, N_FFT, seed=1)]
    clip = recorded_clip(meta).n_samples or SAMPLE_RATE
    lengths = (clip + clip // 2 + 3 * HOP_LENGTH, max(clip // 2, N_FFT), 2 * clip + 1)
    return [generated_audio(batch, length, seed=batch) for batch, length in zip((2, 1, 3), lengths, strict=True)]


def metadata(meta: dict[str, Any]) -> dict[str, str]:
    """What a user needs besides the weights: the input's conventions and what the outputs name."""
    common = {"finser_kind": meta["kind"], "sample_rate": str(SAMPLE_RATE), "n_fft": str(N_FFT)}
    if meta["kind"] == "fin":
        return {**common, "feature": str(meta.get("feature")), "input": "frames (batch, 2048) float32",
                "output": "feature (batch, dim) in the feature's own units"}  # fmt: skip
    emotions, spec = list(meta["emotions"]), recorded_clip(meta)
    return {**common, "hop_length": str(HOP_LENGTH), "emotions": ",".join(emotions),
            "clip_samples": str(spec.n_samples or ""), "offset_samples": str(offset_samples(spec)),
            "band_limit_hz": str(spec.band_limit_hz or ""),
            "input": "audio (batch, samples) float32 mono in [-1, 1]: a whole recording, any length",
            "output": f"probabilities (batch, {len(emotions)}) in 'emotions' order, averaged over windows of "
                      "clip_samples every half clip from offset_samples on (from 0 when shorter) as predict.py; "
                      "window_probabilities (batch, windows, "
                      f"{len(emotions)}); band_limit_hz set: low-pass the audio at it first"}  # fmt: skip


def names(meta: dict[str, Any]) -> tuple[str, list[str], dict[str, dict[int, str]]]:
    """Input name, output names, and their dynamic axes."""
    if meta["kind"] == "fin":
        return "frames", ["feature"], {"frames": {0: "batch"}, "feature": {0: "batch"}}
    axes = {"audio": {0: "batch", 1: "samples"}, "probabilities": {0: "batch"},
            "window_probabilities": {0: "batch", 1: "windows"}}  # fmt: skip
    return "audio", ["probabilities", "window_probabilities"], axes


def output_list(module: nn.Module, example: torch.Tensor) -> list[torch.Tensor]:
    """A module's outputs as a list, whether it returns one tensor (a FIN) or a tuple (an SER model)."""
    outputs = module(example)
    return list(outputs) if isinstance(outputs, tuple) else [outputs]


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


def check_all(
    module: nn.Module, run: Callable[[torch.Tensor], list[np.ndarray]], meta: dict[str, Any], what: str
) -> float:
    """Every output on every example input against PyTorch; the largest difference."""
    return max(
        check_close(reference, exported, what)
        for example in example_inputs(meta)
        for reference, exported in zip(output_list(module, example), run(example), strict=True)
    )


def export_onnx(model: nn.Module, meta: dict[str, Any], out: Path) -> float:
    """The model as ONNX with its metadata, checked in onnxruntime; returns the largest difference seen."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise FinserError(f"format=onnx needs the onnx extra: {ONNX_EXTRA}") from error
    module = exported_module(model, meta)
    input_name, output_names, axes = names(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes are not the user's
        try:
            torch.onnx.export(module, (example_inputs(meta)[0],), str(out), input_names=[input_name], dynamo=False,
                              output_names=output_names, dynamic_axes=axes, opset_version=OPSET)  # fmt: skip
        except torch.onnx.errors.UnsupportedOperatorError as error:  # an op ONNX lacks
            raise FinserError(f"this model cannot be written as ONNX ({error}): use format=torchscript") from error
    proto = onnx.load(str(out))
    for key, value in metadata(meta).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(out))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return check_all(module, lambda example: session.run(None, {input_name: example.numpy()}), meta, "onnxruntime")


def export_torchscript(model: nn.Module, meta: dict[str, Any], out: Path) -> float:
    """The model traced to TorchScript, its metadata as the extra file ``finser.json``, checked after reloading."""
    module = exported_module(model, meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (example_inputs(meta)[0],), check_trace=False)
    torch.jit.save(traced, str(out), _extra_files={"finser.json": json.dumps(metadata(meta))})
    loaded = torch.jit.load(str(out))
    return check_all(module, lambda example: [o.numpy() for o in output_list(loaded, example)], meta,
                     "the TorchScript file")  # fmt: skip


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
    band_limit_hz = recorded_clip(meta, checkpoint).band_limit_hz if meta["kind"] == "ser" else None
    if band_limit_hz:
        log.warning(
            "%s was trained low-passed at %s Hz (dataset.band_limit_hz): the exported model does not low-pass, so "
            "low-pass the audio before scoring it (docs/predicting.md)", checkpoint, band_limit_hz
        )  # fmt: skip
    path = output_path(checkpoint, format_name, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        difference = EXPORTERS[format_name](model, meta, path)
    except FinserError:
        path.unlink(missing_ok=True)  # a file that failed its check is not left for someone to ship
        raise
    log.info("exported %s to %s (max difference from PyTorch %.3g)", checkpoint, path, difference)
    return path, difference

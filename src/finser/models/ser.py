"""Speech emotion recognition: a front-end (exact features or five FINs) frame by frame, then a classifier head.

``SERModel`` maps a waveform (B, samples) at 22,050 Hz, or frames (B, T, 2048), to emotion logits (B, 8). Its
constructor config describes the architecture only: FIN weights arrive through ``load_pretrained`` or the state
dict, so a published SER checkpoint rebuilds without the FIN files.

The 162 values per frame are, in order, ZCR 1, RMS 1, chroma 12, MFCC 20, mel 128 (``finser.features.FEATURES``).
Both front-ends output them in the features' own units; ``LogMel`` then compresses the mel power (it spans ~10
decades) with the same fixed function whichever front-end made it, and each head starts with a batch norm per
feature, so the front-end is the only thing that differs between the ablations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from finser.data.labels import EMOTIONS
from finser.errors import FinserError
from finser.features import FEATURE_DIMS, FEATURES, HOP_LENGTH, N_FFT, check_feature_set, compute_all, frame_signal
from finser.models.fin import CLOSED_FORM_ARCHITECTURES, build_fin

N_CLASSES = len(EMOTIONS)  # the default head: every canonical emotion; a dataset's own set via n_classes
N_FEATURES = sum(FEATURE_DIMS[feature] for feature in FEATURES)  # 162
MEL_FLOOR = 1e-8  # power floor before the log: far below the mel power of any audible frame


def feature_slices(features: Sequence[str] = FEATURES) -> dict[str, slice]:
    """Where each feature sits in the concatenated per-frame vector."""
    slices, start = {}, 0
    for feature in features:
        slices[feature] = slice(start, start + FEATURE_DIMS[feature])
        start += FEATURE_DIMS[feature]
    return slices


def frame_mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, T) true for frames that lie wholly inside each clip (center=False); at least the first frame."""
    valid = ((lengths - N_FFT).clamp_min(0) // HOP_LENGTH + 1).clamp(max=n_frames)
    return torch.arange(n_frames, device=lengths.device) < valid.unsqueeze(-1)


def masked_mean(sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Time-mean of (B, C, T) over the frames ``mask`` (B, T) keeps: the study's per-clip average."""
    weights = mask.to(sequence.dtype).unsqueeze(1)
    return (sequence * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)


# ----------------------------------------------------------------------------------------------------------------
# Front-ends: frames (N, 2048) → (N, 162) in the features' own units


class ExactFrontEnd(nn.Module):
    """The baseline: the closed-form features (``finser.features.compute_all``), no weights: nothing is loaded or
    redrawn before the task is built (``conf/front_end/exact.yaml`` names no ``weights``)."""

    def __init__(self, features: Sequence[str] = FEATURES) -> None:
        super().__init__()
        self.features = check_feature_set(features)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        values = compute_all(frames, self.features)
        return torch.cat([values[feature] for feature in self.features], dim=-1)

    def parameter_groups(self, lr: float) -> list[dict]:
        return []


class FINFrontEnd(nn.Module):
    """The FINs of ``features`` (the five by default) side by side, applied to every frame; their outputs
    concatenated in ``features`` order."""

    def __init__(self, arch: str = "spectral", features: Sequence[str] = FEATURES) -> None:
        """``arch``: a name in ``finser.models.fin.FIN_ARCHITECTURES`` (``fin_arch=<arch>``), as a FIN run builds it."""
        super().__init__()
        self.arch = arch
        self.features = check_feature_set(features)
        self.fins = nn.ModuleDict({feature: build_fin(feature, arch) for feature in self.features})

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.fins[feature](frames) for feature in self.features], dim=-1)

    def checkpoint_paths(self, fin_dir: str | Path) -> dict[str, Path]:
        """Where ``python train.py feature=F fin_arch=A`` publishes each FIN."""
        return {feature: Path(fin_dir) / f"{feature}_{self.arch}.ckpt" for feature in self.features}

    def load_pretrained(
        self, paths: Mapping[str, Path], load: Callable[[Path], tuple[nn.Module, dict]]
    ) -> dict[str, dict]:
        """Copy each published FIN's weights in (``load``: ``finser.models.checkpoint.load_model``, which checks the
        file), refusing one whose architecture differs; returns each FIN's metadata (its pre-training metrics among
        them) by feature."""
        metas = {}
        for feature, path in paths.items():
            model, meta = load(path)
            held = (meta.get("kind"), meta.get("feature"), meta.get("arch"))
            misplaced = (
                f"{path} holds the {held[1]} {held[0]} with fin_arch={held[2]}, where the {feature} FIN with "
                f"fin_arch={self.arch} belongs: re-run `python train.py feature={feature} fin_arch={self.arch}`"
            )
            if held != ("fin", feature, self.arch):
                raise FinserError(misplaced)
            try:
                self.fins[feature].load_state_dict(model.state_dict())
            except RuntimeError as error:  # the right names, other shapes (a FIN built with other options)
                raise FinserError(misplaced) from error
            metas[feature] = meta
        return metas

    def check_closed_form(self) -> None:
        """Refuse ``fin.init=closed_form`` for FINs whose constructor draws random weights (conv, fc)."""
        if self.arch not in CLOSED_FORM_ARCHITECTURES:
            raise FinserError(
                f"fin.init=closed_form starts the FINs at their feature's closed form, which only fin_arch="
                f"{' or '.join(CLOSED_FORM_ARCHITECTURES)} constructs; fin_arch={self.arch} starts at random: pass "
                f"fin_arch={CLOSED_FORM_ARCHITECTURES[0]}, or fin.init=random for the {self.arch} FINs' own control"
            )

    @torch.no_grad()
    def randomize_(self, generator: torch.Generator | None = None) -> None:
        """Redraw every FIN weight at random, keeping each tensor's scale; buffers (masks, scales) stay.

        ``spectral`` FINs are *constructed* at their feature's closed form, so "no pre-training" must also undo
        that structure: each parameter becomes Gaussian with its tensor's own mean and std (std |mean| / 2 for a
        constant tensor), random yet of the magnitude the layer expects. For the study's FINs this is a draw
        like their default init. Draws use torch's global generator unless given one: seeded by the run's seed.
        """
        for parameter in self.fins.parameters():
            mean = parameter.mean()
            std = parameter.std() if parameter.numel() > 1 else torch.zeros(())
            if not std > 1e-3 * mean.abs():  # a constant tensor (up to rounding): spread it around its value
                std = mean.abs() / 2 + 1e-3
            noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.copy_(mean + std * noise.to(parameter.device))

    def parameter_groups(self, lr: float) -> list[dict]:
        """Each FIN's own groups (spectral FINs step their Fourier atoms slower)."""
        return [group for feature in self.features for group in self.fins[feature].parameter_groups(lr)]


def log_power(values: torch.Tensor, floor: float = MEL_FLOOR) -> torch.Tensor:
    """log10 of a power, floored: power spans ~10 decades, its log a few units the heads' batch norms can take."""
    return torch.log10(values.clamp_min(0) + floor)


class LogMel(nn.Module):
    """log10 of the mel power (floored at ``MEL_FLOOR``), the other 34 values unchanged: the same for both
    front-ends, so the normalisation never differs between ablations."""

    def __init__(self, features: Sequence[str] = FEATURES, floor: float = MEL_FLOOR) -> None:
        super().__init__()
        self.mel = feature_slices(features).get("melspec")
        self.floor = floor

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.mel is None:
            return values
        mel = log_power(values[..., self.mel], self.floor)
        return torch.cat([values[..., : self.mel.start], mel, values[..., self.mel.stop :]], dim=-1)


# ----------------------------------------------------------------------------------------------------------------
# Heads: per-frame features (B, 162, T) and a frame mask (B, T) → logits (B, 8)


def keras_defaults_(module: nn.Module) -> None:
    """Keras's layer defaults, which the study's head started from: Glorot-uniform kernels (bound
    sqrt(6 / (fan_in + fan_out)), fans counting the kernel's width), zero biases, batch norm momentum 0.99 and
    epsilon 1e-3 (PyTorch's momentum weighs the new batch: 1 - 0.99 = 0.01)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d):
            layer.momentum, layer.eps = 0.01, 1e-3


def pytorch_defaults_(module: nn.Module) -> None:
    """PyTorch's own (Kaiming-uniform a = sqrt(5), fan-in biases, momentum 0.1, epsilon 1e-5): as built."""


HEAD_INITS: dict[str, Callable[[nn.Module], None]] = {"keras": keras_defaults_, "pytorch": pytorch_defaults_}


class KerasSameConv1d(nn.Conv1d):
    """A stride-1 convolution with Keras's 'same' padding: (k - 1) // 2 zeros before, k // 2 after (3 and 4 for
    k = 8), explicit, so PyTorch's warning about 'same' with an even kernel never fires."""

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        width = self.kernel_size[0]
        return super().forward(nn.functional.pad(sequence, ((width - 1) // 2, width // 2)))


class Conv1dHead(nn.Module):
    """The study's head on the time-mean 162-vector: batch norm, then conv1d over the 162 values as a sequence.

    Channels 256, 256 → pool 8 → 128 ×4 → pool 8 → 64, 64, kernel 8 with Keras's 'same' padding so 162 values fit
    (162 → 20 → 2, see :class:`KerasSameConv1d`), dropout 0.25 after each pool and before the dense layer to 8
    classes. A pool given fewer values than its window keeps their maximum, so any subset of the features fits
    (34 without the mel FIN: 34 → 4 → 1); the study's 162 never needs it. ``init``: ``keras`` (the study's layers
    as Keras builds them, see :func:`keras_defaults_`) or ``pytorch``.
    """

    def __init__(
        self,
        n_features: int = N_FEATURES,
        n_classes: int = N_CLASSES,
        channels: Sequence[int] = (256, 256, 128, 128, 128, 128, 64, 64),
        pool_after: Sequence[int] = (2, 6),
        pool: int = 8,
        kernel_size: int = 8,
        dropout: float = 0.25,
        init: str = "keras",
    ) -> None:
        super().__init__()
        if init not in HEAD_INITS:
            raise FinserError(f"unknown init {init!r}: expected one of {', '.join(HEAD_INITS)}")
        self.norm = nn.BatchNorm1d(n_features)
        layers: list[nn.Module] = []
        width, length = 1, n_features
        for index, out_channels in enumerate(channels, start=1):
            layers += [KerasSameConv1d(width, out_channels, kernel_size), nn.ReLU()]
            width = out_channels
            if index in pool_after:
                short = length < pool  # fewer values than the window: keep one position, the maximum of all
                layers += [nn.MaxPool1d(pool, ceil_mode=short), nn.Dropout(dropout)]
                length = 1 if short else length // pool
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * length, n_classes))
        HEAD_INITS[init](self)

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(masked_mean(sequence, mask)).unsqueeze(1))


class TimeMean(nn.Module):
    """Only the time-mean 162-vector the study's head classifies (its input before the batch norm): the features
    of the linear-probe reference."""

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(sequence, mask)


class StatisticsPooling(nn.Module):
    """Mean and standard deviation over the kept frames: (B, C, T) → (B, 2C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(sequence.dtype).unsqueeze(1)
        return weighted_statistics(sequence, weights / weights.sum(-1, keepdim=True).clamp_min(1.0))


class AttentivePooling(nn.Module):
    """Attentive statistics pooling: a learned per-frame weight (softmax over kept frames), weighted mean and std."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(sequence).masked_fill(~mask.unsqueeze(1), float("-inf"))
        return weighted_statistics(sequence, scores.softmax(dim=-1))


def weighted_statistics(sequence: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean and std over time; ``weights`` (B, 1, T) sum to one."""
    mean = (sequence * weights).sum(-1)
    variance = (weights * (sequence - mean.unsqueeze(-1)).square()).sum(-1)
    return torch.cat([mean, variance.clamp_min(1e-6).sqrt()], dim=-1)


POOLINGS: dict[str, type[nn.Module]] = {"statistics": StatisticsPooling, "attentive": AttentivePooling}


class TemporalHead(nn.Module):
    """Ours: dilated convolutions over the frame sequence, then statistics or attentive pooling.

    Tests whether averaging the 162 features over time (the study's head) throws away emotion cues that live in
    their dynamics (pitch movement, energy contour, pauses).
    """

    def __init__(
        self,
        n_features: int = N_FEATURES,
        n_classes: int = N_CLASSES,
        channels: int = 128,
        n_layers: int = 3,
        kernel_size: int = 5,
        dropout: float = 0.25,
        pooling: str = "attentive",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise FinserError(f"unknown pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        self.norm = nn.BatchNorm1d(n_features)
        blocks: list[nn.Module] = []
        width = n_features
        for index in range(n_layers):
            dilation = 2**index
            padding = dilation * (kernel_size - 1) // 2
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(width, channels, kernel_size, dilation=dilation, padding=padding),
                    nn.BatchNorm1d(channels),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                )
            )
            width = channels
        self.blocks = nn.ModuleList(blocks)
        self.pooling = POOLINGS[pooling](channels)
        self.classifier = nn.Sequential(
            nn.Linear(2 * channels, channels), nn.ReLU(), nn.Dropout(dropout), nn.Linear(channels, n_classes)
        )

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames past a clip's end are zeroed before every convolution: exactly the zero padding the clip would get
        alone, so a clip's logits do not depend on what it is batched with (in eval mode)."""
        keep = mask.unsqueeze(1).to(sequence.dtype)
        hidden = self.norm(sequence) * keep
        for block in self.blocks:
            hidden = block(hidden) * keep
        return self.classifier(self.pooling(hidden, mask))


# ----------------------------------------------------------------------------------------------------------------
# The whole model


class SERModel(nn.Module):
    """Waveform (B, samples) or frames (B, T, 2048) → emotion logits (B, n_classes).

    Frames are 2048-sample windows at hop 512 with center=False (exactly a FIN's input); ``lengths`` (B,) masks
    the frames past each clip's end when a batch is padded to its longest clip.
    """

    def __init__(self, front_end: nn.Module, head: nn.Module, compress: nn.Module | None = None) -> None:
        super().__init__()
        self.front_end = front_end
        self.compress = compress if compress is not None else LogMel(front_end.features)
        self.head = head

    def frame_features(
        self, inputs: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The front-end's raw per-frame values (B, 162, T) in the features' units, and the frame mask (B, T)."""
        frames = inputs if inputs.ndim == 3 else frame_signal(inputs)
        batch, n_frames = frames.shape[:2]
        values = self.front_end(frames.reshape(batch * n_frames, N_FFT)).reshape(batch, n_frames, -1)
        if lengths is None:
            mask = torch.ones(batch, n_frames, dtype=torch.bool, device=frames.device)
        else:
            mask = frame_mask(lengths.to(frames.device), n_frames)
        return values.transpose(1, 2), mask

    def classify(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits from the front-end's per-frame values (B, 162, T): compress the mel power, then the head."""
        return self.head(self.compress(values.transpose(1, 2)).transpose(1, 2), mask)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(*self.frame_features(inputs, lengths))

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser groups of the trainable parameters: the front-end's own (if any train), then the rest."""
        groups = [
            {**group, "params": [p for p in group["params"] if p.requires_grad]}
            for group in self.front_end.parameter_groups(lr)
        ]
        rest = [p for name, p in self.named_parameters() if not name.startswith("front_end.") and p.requires_grad]
        return [group for group in [*groups, {"params": rest, "lr": lr}] if group["params"]]


def n_frames(n_samples: int) -> int:
    """Frames per clip at hop 512, center=False: 55,125 samples (2.5 s) → 104."""
    return 1 + (n_samples - N_FFT) // HOP_LENGTH if n_samples >= N_FFT else 0

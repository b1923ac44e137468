"""The published numbers finser reproduces, in one place: its tables, benchmark and tests compare against these.

From "Speech Emotion Recognition using Feature Imitating Networks" (Keras/TensorFlow; FINs after Saba-Sadiya,
Alhanai, Ghassemi, "Feature Imitating Networks", ICASSP 2022, arXiv 2110.04831), as summarised in docs/ser.md
("The study"): its FIN sizes and costs, the R² its FINs reached, and its SER results. Single runs,
no seeds; a file-level (not speaker-independent) split of RAVDESS + CREMA-D + TESS + SAVEE.
"""

from __future__ import annotations

# Parameters of the study's FIN per feature (its table of architectures; RMS is dense-only, the others start with a
# conv1d front-end).
FIN_PARAMETERS: dict[str, int] = {
    "zcr": 263_000,
    "rms": 66_000,
    "chroma": 900_000,
    "mfcc": 822_000,
    "melspec": 983_000,
}

# Multiply-accumulates per 2,048-sample frame of the same FINs (FLOPs = 2 × MACs).
FIN_MACS: dict[str, float] = {
    "zcr": 0.39e6,
    "rms": 0.07e6,
    "chroma": 202e6,
    "mfcc": 202e6,
    "melspec": 404e6,
}

# The features whose study FIN has no conv front-end.
DENSE_FINS: frozenset[str] = frozenset({"rms"})

# FIN R² on the study's test split and, second, on ESD (mel: variance-weighted).
FIN_R2: dict[str, tuple[float, float]] = {
    "zcr": (0.93, 0.92),
    "rms": (0.98, 0.97),
    "chroma": (0.93, 0.92),
    "mfcc": (0.92, 0.54),
    "melspec": (0.97, 0.97),
}

# SER on the study's test split (1,825 files), per variant: accuracy, macro F1, weighted F1. Keys follow finser's
# ``variant`` names (experiment=ser_baseline, ser_fin_frozen, ser_fin_finetuned, ser_fin_scratch).
SER_RESULTS: dict[str, dict[str, float]] = {
    "finetuned": {"test/acc": 0.616, "test/f1_macro": 0.65, "test/f1_weighted": 0.62},
    "frozen": {"test/acc": 0.491, "test/f1_macro": 0.47, "test/f1_weighted": 0.48},
    "scratch": {"test/acc": 0.520, "test/f1_macro": 0.55, "test/f1_weighted": 0.52},
    "baseline": {"test/acc": 0.513, "test/f1_macro": 0.48, "test/f1_weighted": 0.50},
}

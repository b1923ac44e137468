"""What a SER run is measured against beside its own test scores: a linear probe and the FINs' drift.

* The linear probe: a logistic regression on the same clips' time-mean exact features (the 162 values the study's
  head classifies: ``finser.features.compute_all`` per frame, mel power as log10 like every head sees it, averaged
  over the clip's frames), standardised on the training clips, its C chosen on the validation clips. A network
  that scores below it has not learned what a linear model finds in its own input. A frozen FIN front-end's head
  sees the FINs' values, not the exact features: its own-input probe is the same regression on those.
* FIN drift: each FIN's R² against its exact feature on the test clips' frames after SER training (variance-
  weighted for multi-output features, as in FIN pre-training): do fine-tuned FINs still imitate their features?
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MetricCollection

from finser.data.utterances import collate
from finser.features import FEATURE_DIMS, FEATURES, compute, frame_signal
from finser.models.ser import ExactFrontEnd, SERModel, TimeMean, frame_mask
from finser.tasks.fin import regression_metrics

PROBE_C = (0.01, 0.1, 1.0, 10.0, 100.0)  # the inverse regularisation strengths tried on the validation clips
BATCH_SIZE = 32


def local(metrics: MetricCollection) -> MetricCollection:
    """Metrics that never gather across processes: every process measures the whole set itself (under DDP too)."""
    for metric in metrics.values():
        metric.sync_on_compute = False
    return metrics


def batches(dataset: Dataset, batch_size: int = BATCH_SIZE) -> Iterator[dict]:
    """A set's clips in order, padded per batch with their lengths (as the SER loaders give them)."""
    yield from DataLoader(dataset, batch_size=batch_size, collate_fn=collate)


@torch.no_grad()
def time_mean_features(
    dataset: Dataset, features: Sequence[str] = FEATURES, front_end: nn.Module | None = None,
    compress: nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each clip's time-mean exact ``features`` (clips, 162 for all five), or ``front_end``'s values as the head
    sees them (through ``compress``: by default mel power as log10), and its emotion index (clips,)."""
    front_end = ExactFrontEnd(features) if front_end is None else front_end
    device = next(front_end.parameters(), torch.empty(0)).device
    model = SERModel(front_end, TimeMean(), compress)
    modes = [module.training for module in model.modules()]
    model.eval()
    values, emotions = [], []
    for batch in batches(dataset):
        values.append(model(batch["waveform"].to(device), batch["length"].to(device)).cpu())
        emotions.append(batch["emotion"])
    for module, training in zip(model.modules(), modes, strict=True):
        module.train(training)  # a network's own front-end goes back as it was
    return torch.cat(values).double().numpy(), torch.cat(emotions).numpy()


def linear_probe(
    sets: Mapping[str, Dataset], classification_metrics: MetricCollection, test_prefixes: Mapping[str, str],
    grid: Sequence[float] = PROBE_C, features: Sequence[str] = FEATURES, front_end: nn.Module | None = None,
    compress: nn.Module | None = None,
) -> dict[str, float]:  # fmt: skip
    """Fit on ``sets["train"]``, pick C by macro F1 on ``sets["val"]`` (the smallest C of a tie), score every set;
    on the time-mean exact ``features`` (the network's own subset when its front-end takes one), or on a frozen
    ``front_end``'s own values through ``compress`` (the head's input, not the features it imitates).

    ``classification_metrics`` is the network's own (torchmetrics) collection; ``test_prefixes`` maps each test
    set's name to its key prefix (``test/``, ``eval/<name>/``). Returns e.g. ``test/f1_macro`` and ``C``.
    """
    data = {
        name: time_mean_features(sets[name], features, front_end, compress) for name in ("train", "val", *test_prefixes)
    }
    scaler = StandardScaler().fit(data["train"][0])

    def scores(model: LogisticRegression, name: str) -> dict[str, float]:
        features, emotions = data[name]
        metrics = local(classification_metrics.clone())
        metrics.update(torch.from_numpy(model.predict(scaler.transform(features))), torch.from_numpy(emotions))
        return {key: float(value) for key, value in metrics.compute().items()}

    train_features, train_emotions = scaler.transform(data["train"][0]), data["train"][1]
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(train_features, train_emotions) for c in grid}
    best = max(grid, key=lambda c: (scores(fits[c], "val")["f1_macro"], -c))
    results = {"C": float(best)}
    for name, prefix in {"train": "train/", "val": "val/", **test_prefixes}.items():
        results.update({f"{prefix}{key}": value for key, value in scores(fits[best], name).items()})
    return results


@torch.no_grad()
def fin_drift(fins: Mapping[str, nn.Module], dataset: Dataset, device: torch.device | str = "cpu") -> dict[str, float]:
    """Each FIN's R² against its exact feature on every frame of the set's clips (frames past a clip's end
    excluded), as FIN pre-training scores it: feature → R²."""
    metrics = {feature: local(regression_metrics(FEATURE_DIMS[feature])).to(device) for feature in fins}
    for batch in batches(dataset):
        frames = frame_signal(batch["waveform"])
        frames = frames[frame_mask(batch["length"], frames.shape[1])].to(device)  # (kept frames, 2048)
        for feature, fin in fins.items():
            predictions, targets = fin(frames), compute(feature, frames)
            if FEATURE_DIMS[feature] == 1:
                predictions, targets = predictions.squeeze(-1), targets.squeeze(-1)
            metrics[feature].update(predictions, targets)
    return {feature: float(collection.compute()["r2"]) for feature, collection in metrics.items()}

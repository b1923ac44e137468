"""Result tables and figures from finished runs: reads results.json and csv/metrics.csv, no network, no W&B account."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from scipy import stats

from finser.data.labels import EMOTIONS
from finser.errors import FinserError
from finser.features import FEATURE_DIMS, FEATURES, REGISTERED_FEATURES, compute, frame_signal
from finser.outputs import atomic_text, check_output_folder, first_line_is
from finser.study import FIN_R2, SER_RESULTS

log = logging.getLogger(__name__)

SER_METRICS = (("test/acc", "accuracy"), ("test/f1_macro", "macro F1"), ("test/f1_weighted", "weighted F1"))
VARIANT_ORDER = ("baseline", "frozen", "finetuned", "scratch")
PROBE = "reference/linear_probe/"  # the keys of each SER run's linear-probe reference (finser.tasks.references)
OWN_PROBE = "reference/own_input_probe/"  # frozen FINs: the same probe on the FINs' values, what their head sees


def find_results(paths: Iterable[str | Path]) -> list[dict]:
    """Every results.json under the given run directories (searched recursively), with its run dir attached."""
    results = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FinserError(f"run directory {str(root)!r} does not exist")
        for path in sorted(root.rglob("results.json")):
            entry = json.loads(path.read_text())
            entry["run_dir"] = str(path.parent)
            results.append(entry)
    if not results:
        raise FinserError(f"no results.json under {', '.join(map(str, paths))}: run `python train.py ...` first")
    return results


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fin_cost(checkpoint: str) -> tuple[int, float]:
    """Parameters and operations per frame of a published FIN (all ops, as ``make bench`` counts them)."""
    from finser.models.checkpoint import load_fin
    from finser.models.cost import operations_per_frame

    fin = load_fin(checkpoint)
    operations = operations_per_frame(fin, torch.randn(16, 2048))  # counts do not depend on the values
    return sum(parameter.numel() for parameter in fin.parameters()), operations


def fin_table(results: list[dict]) -> str:
    runs = [entry for entry in results if entry.get("experiment") == "fin"]
    if not runs:
        return "_No FIN runs found._"
    eval_sets = sorted({key.split("/")[1] for entry in runs for key in entry if key.startswith("eval/")})
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for entry in runs:
        grouped[(entry["feature"], entry["arch"])].append(entry)
    rows = []
    order = {feature: rank for rank, feature in enumerate(REGISTERED_FEATURES)}
    for (feature, arch), entries in sorted(grouped.items(), key=lambda item: (order[item[0][0]], item[0][1])):
        checkpoint = entries[-1].get("checkpoint", "")
        parameters, flops = fin_cost(checkpoint) if Path(checkpoint).exists() else (0, math.nan)
        study = "{:.2f} ({:.2f})".format(*FIN_R2[feature]) if feature in FIN_R2 else "– (no FIN in the study)"
        rows.append(
            [feature, FEATURE_DIMS[feature], arch, f"{parameters:,}", f"{flops / 1e6:.3g}",
             mean_std([e["test/r2"] for e in entries if "test/r2" in e]),
             *[mean_std([e[f"eval/{name}/r2"] for e in entries if f"eval/{name}/r2" in e]) for name in eval_sets],
             study]
        )  # fmt: skip
    header = ["feature", "dim", "arch", "params", "MFLOP/frame (all ops)", "R² test", *[f"R² {n}" for n in eval_sets]]
    return markdown_table([*header, "study R² test (ESD)"], rows)


def is_ser(entry: dict) -> bool:
    """An SER run's results (any ``ser_*`` preset), not a FIN run's."""
    return str(entry.get("experiment", "")).startswith("ser")


def ser_groups(results: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """SER runs grouped by (variant, head, held-out corpus or "–"), each list sorted by seed."""
    grouped: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for entry in results:
        if is_ser(entry):
            grouped[(entry.get("variant", "?"), entry.get("head", "?"), entry.get("held_out") or "–")].append(entry)
    for entries in grouped.values():
        entries.sort(key=lambda entry: entry.get("seed", 0))
    return dict(sorted(grouped.items(), key=lambda item: (item[0][2], item[0][1], _variant_rank(item[0][0]))))


def group_label(key: tuple[str, str, str]) -> str:
    """variant · head, and the held-out corpus of a leave-one-corpus-out run."""
    variant, head, held_out = key
    return f"{variant} · {head}" + (f" · tested on {held_out}" if held_out != "–" else "")


def _variant_rank(variant: str) -> int:
    return VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)


def run_key(entry: dict) -> tuple[object, object]:
    """What pairs two runs: the speaker fold (None without folds) and the seed; at one key both saw the same clips."""
    return entry.get("fold"), entry.get("seed")


def paired_test(first: list[dict], second: list[dict], metric: str = "test/f1_macro") -> str:
    """Mean difference over the (fold, seed) pairs both variants ran, with a paired t-test's p-value."""
    by_seed = {run_key(entry): entry[metric] for entry in second if metric in entry}
    pairs = [(entry[metric], by_seed[run_key(entry)]) for entry in first if run_key(entry) in by_seed]
    unit = "seeds" if all(entry.get("fold") is None for entry in first) else "(fold, seed) pairs"
    if len(pairs) < 2:
        return f"n = {len(pairs)} paired {unit}: too few for a test"
    differences = np.array([a - b for a, b in pairs])
    if np.allclose(differences, differences[0]):
        return f"Δ = {differences.mean():+.3f} over {len(pairs)} {unit} (identical differences: no variance to test)"
    p_value = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue
    spread = differences.std(ddof=1)
    return f"Δ = {differences.mean():+.3f} ± {spread:.3f} over {len(pairs)} {unit}, paired t-test p = {p_value:.3f}"


def probe_entries(entries: list[dict]) -> list[dict]:
    """The linear probe of each seed's clips as a run of its own (its test metrics under the network's keys), one
    per seed: every variant of a seed fits the same probe on the same clips."""
    by_seed: dict[object, dict] = {}
    for entry in entries:
        if f"{PROBE}test/f1_macro" in entry:
            scores = {key: entry[PROBE + key] for key, _ in SER_METRICS if PROBE + key in entry}
            by_seed.setdefault(run_key(entry), {"seed": entry.get("seed"), "fold": entry.get("fold"), **scores})
    return sorted(by_seed.values(), key=lambda entry: (entry.get("fold") or 0, entry.get("seed") or 0))


def mean_of(entries: list[dict], key: str) -> float:
    values = [entry[key] for entry in entries if key in entry]
    return float(np.mean(values)) if values else math.nan


def metric_cells(entries: list[dict]) -> list[str]:
    return [mean_std([entry[key] for entry in entries if key in entry]) for key, _ in SER_METRICS]


def ser_table(results: list[dict]) -> str:
    grouped = ser_groups(results)
    if not grouped:
        return "_No SER runs found._"
    rows = []
    for (variant, head, held_out), entries in grouped.items():
        probes = [value for value in map(own_probe, entries) if value is not None]
        below = bool(probes) and mean_of(entries, "test/f1_macro") < float(np.mean(probes))
        probe = mean_std([entry[f"{PROBE}test/f1_macro"] for entry in entries if f"{PROBE}test/f1_macro" in entry])
        own = [entry[f"{OWN_PROBE}test/f1_macro"] for entry in entries if f"{OWN_PROBE}test/f1_macro" in entry]
        probe += f" (on its own input: {mean_std(own)})" if own else ""
        rows.append([variant, head, held_out, len(entries), *metric_cells(entries), probe,
                     "**below its linear probe**" * below])  # fmt: skip
    for held_out in sorted({held_out for _, _, held_out in grouped}):
        probes = probe_entries(
            [e for (_, _, corpus), entries in grouped.items() if corpus == held_out for e in entries]
        )
        if probes:
            rows.append(["linear probe", "logistic regression", held_out, len(probes), *metric_cells(probes), "", ""])
    header = ["variant", "head", "held-out corpus", "seeds", *[name for _, name in SER_METRICS]]
    table = markdown_table([*header, "its linear probe's macro F1", ""], rows)
    comparisons = []
    for head, held_out in sorted({(head, held_out) for _, head, held_out in grouped}):
        setting = f"{head} head" + (f", tested on {held_out}" if held_out != "–" else "")
        finetuned = grouped.get(("finetuned", head, held_out))
        for other in ("scratch", "baseline"):
            if finetuned and grouped.get((other, head, held_out)):
                comparisons.append(f"- {setting}, fine-tuned vs {other} (macro F1): "
                                   f"{paired_test(finetuned, grouped[(other, head, held_out)])}")  # fmt: skip
        for variant in VARIANT_ORDER:
            entries = grouped.get((variant, head, held_out), [])
            if probe_entries(entries):
                comparisons.append(f"- {setting}, {variant} vs its linear probe (macro F1): "
                                   f"{paired_test(entries, probe_entries(entries))}")  # fmt: skip
    return table + ("\n\n" + "\n".join(comparisons) if comparisons else "")


FRONT_ENDS = {  # variant → what its front-end is, in the front-end table's order
    "baseline": "exact features",
    "frozen": "FINs, pre-trained, frozen",
    "finetuned": "FINs, pre-trained, fine-tuned",
    "scratch": "FINs, random init, trained",
    "closed_form": "spectral FINs at their closed form, fine-tuned",
    "sincnet": "SincNet, mel init, trained",
    "leaf": "LEAF, mel init, trained",
}


def front_end_cost(checkpoint: str) -> tuple[int, float]:
    """Parameters of a published SER model's front-end and its compression, and their operations per frame."""
    from finser.models.checkpoint import load_model
    from finser.models.cost import operations_per_frame

    net = load_model(checkpoint)[0]
    frames = torch.randn(16, 2048)  # counts do not depend on the values
    values = net.front_end(frames).detach().unsqueeze(0)  # one clip of 16 frames for the compression
    parameters = sum(p.numel() for p in [*net.front_end.parameters(), *net.compress.parameters()])
    return parameters, operations_per_frame(net.front_end, frames) + operations_per_frame(net.compress, values) / 16


def by_run(entries: list[dict]) -> list[dict]:
    """Entries keyed for pairing by seed and, where the runs are folds, fold too."""
    return [{**entry, "seed": (entry.get("seed"), entry.get("fold"))} for entry in entries]


def front_end_table(results: list[dict]) -> str:
    """One row per front-end (variant), head and held-out corpus: its cost (parameters and operations per frame of
    the front-end and its compression), test macro F1 over seeds and folds, its linear probe, and a paired test
    against the fine-tuned FINs of the same setting."""
    grouped = {key: entries for key, entries in ser_groups(results).items() if key[0] in FRONT_ENDS}
    if not grouped:
        return "_No SER runs found._"
    rows = []
    order = sorted(grouped, key=lambda key: (key[2], key[1], list(FRONT_ENDS).index(key[0])))
    for variant, head, held_out in order:
        entries = grouped[(variant, head, held_out)]
        checkpoint = next((e["checkpoint"] for e in entries if Path(e.get("checkpoint") or "").is_file()), None)
        parameters, operations = front_end_cost(checkpoint) if checkpoint else (0, math.nan)
        finetuned = grouped.get(("finetuned", head, held_out))
        versus = paired_test(by_run(entries), by_run(finetuned)) if finetuned and variant != "finetuned" else ""
        probe = [entry[f"{PROBE}test/f1_macro"] for entry in entries if f"{PROBE}test/f1_macro" in entry]
        rows.append([FRONT_ENDS[variant], head, held_out, len(entries), f"{parameters:,}", f"{operations / 1e6:.3g}",
                     mean_std([e["test/f1_macro"] for e in entries if "test/f1_macro" in e]), mean_std(probe),
                     versus])  # fmt: skip
    header = ["front-end", "head", "held-out corpus", "runs", "params", "MFLOP/frame (all ops)", "macro F1 test",
              "its linear probe", "vs fine-tuned FINs (paired)"]  # fmt: skip
    return markdown_table(header, rows)


def drift_table(results: list[dict]) -> str:
    """Each FIN's R² against its feature on the SER test clips after SER training, mean ± std over seeds, with
    its R² in pre-training (the published FIN's test R²) in brackets."""
    grouped = {key: entries for key, entries in ser_groups(results).items()
               if any(f"fin_drift/{feature}/r2" in entry for entry in entries for feature in FEATURES)}  # fmt: skip
    if not grouped:
        return "_No SER runs with FINs found._"
    rows = []
    for (variant, head, held_out), entries in grouped.items():
        cells = []
        for feature in FEATURES:
            after = mean_std([e[f"fin_drift/{feature}/r2"] for e in entries if f"fin_drift/{feature}/r2" in e])
            before = mean_of(entries, f"fin_drift/{feature}/r2_pretrained")
            cells.append(after + ("" if math.isnan(before) else f" ({before:.3f})"))
        rows.append([variant, head, held_out, len(entries), *cells])
    header = ["variant", "head", "held-out corpus", "seeds", *[f"{feature} R²" for feature in FEATURES]]
    return markdown_table(header, rows)


def read_metrics_csv(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Epoch-level series from a run's csv/metrics.csv: name → [(epoch, value)], one value per epoch.

    A resumed run appends to the file, so it holds every attempt: a value at epoch e replaces what earlier rows
    logged at e and after, and the series reads as the epochs that led to the run's end.
    """
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for row in metrics_rows(run_dir):
        for name, value in row.items():
            if value and name.startswith("val/") and row.get("epoch"):
                series[name] = latest_attempt(series[name], int(float(row["epoch"])), float(value))
    return {name: sorted(points.items()) for name, points in series.items()}


def metrics_rows(run_dir: str) -> list[dict[str, str]]:
    path = Path(run_dir) / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def latest_attempt(points: dict[int, float], epoch: int, value: float) -> dict[int, float]:
    """A value at ``epoch`` replaces what earlier attempts logged at it and after (a resumed or restarted run)."""
    return {at: kept for at, kept in points.items() if at < epoch} | {epoch: value}


def validation_steps(run_dir: str, metric: str = "val/f1_macro") -> dict[int, int]:
    """Epoch → the optimiser steps done when ``metric`` was logged for it (the CSV's ``step``), last attempt's."""
    steps: dict[int, float] = {}
    for row in metrics_rows(run_dir):
        if row.get(metric) and row.get("epoch") and row.get("step"):
            steps = latest_attempt(steps, int(float(row["epoch"])), float(row["step"]))
    return {epoch: int(step) for epoch, step in steps.items()}


def save_figure(figure, path: Path, legend_axis=None) -> Path:
    """Write ``figure`` as every report PNG is written (with a light grid and the legend on ``legend_axis``), and
    free it."""
    if legend_axis is not None:
        legend_axis.grid(alpha=0.3)
        legend_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_learning_curves(groups: dict[str, list[dict]], metric: str, path: Path, title: str) -> Path | None:
    """Mean validation curve per group over its runs, shaded ± one std."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for label, entries in groups.items():
        curves = [dict(read_metrics_csv(entry["run_dir"]).get(metric, [])) for entry in entries]
        epochs = sorted(set.intersection(*[set(curve) for curve in curves])) if curves else []
        if not epochs:
            continue
        values = np.array([[curve[epoch] for epoch in epochs] for curve in curves])
        mean, std = values.mean(axis=0), values.std(axis=0)
        axis.plot(np.array(epochs) + 1, mean, marker="o", markersize=3, label=f"{label} (n={len(curves)})")
        axis.fill_between(np.array(epochs) + 1, mean - std, mean + std, alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axis.set(xlabel="epoch", ylabel=metric, title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(figure, path, axis)


def confusion_panels(grouped: dict[tuple[str, str, str], list[dict]]) -> list[tuple[str, np.ndarray, list[str]]]:
    """(title, summed matrix, emotion names) per (variant, head, held-out corpus) and label set: runs on datasets
    of other emotions (IEMOCAP's four beside the union's eight) are never summed together."""
    panels = []
    for key, entries in grouped.items():
        by_labels: dict[tuple[str, ...], list[dict]] = defaultdict(list)
        for entry in entries:
            if "test/confusion" in entry:
                by_labels[tuple(entry.get("emotions", EMOTIONS))].append(entry)
        for labels, members in by_labels.items():
            f1 = [entry["test/f1_macro"] for entry in members if "test/f1_macro" in entry]
            title = group_label(key) + (f"\nmacro F1 {np.mean(f1):.2f}, {len(members)} seed(s)" if f1 else "")
            if len(by_labels) > 1:
                title += f" · {len(labels)} emotions"
            panels.append((title, np.sum([entry["test/confusion"] for entry in members], axis=0), list(labels)))
    return panels


def plot_confusions(grouped: dict[tuple[str, str, str], list[dict]], path: Path) -> Path | None:
    """Row-normalised test confusion matrices summed over seeds, one panel per :func:`confusion_panels` entry."""
    panels = confusion_panels(grouped)
    if not panels:
        return None
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.axis("off")
    for axis, (title, matrix, labels) in zip(axes.flat, panels, strict=False):
        normalised = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
        axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        axis.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        axis.set(title=title, xlabel="predicted", ylabel="true")
        axis.title.set_fontsize(9)
        for (i, j), value in np.ndenumerate(normalised):
            if value >= 0.05:
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                          color="white" if value > 0.5 else "black")  # fmt: skip
    return save_figure(figure, path)


def plot_fin_predictions(results: list[dict], path: Path, seed: int = 4242) -> Path | None:
    """Prediction vs exact target of each published FIN on speech it never saw (first output per feature)."""
    from finser.data.synthetic import SyntheticCorpusSpec, clip_audio
    from finser.models.checkpoint import load_fin

    latest = {(e["feature"], e["arch"]): e for e in results if e.get("experiment") == "fin"}
    fins = [(key, entry["checkpoint"]) for key, entry in sorted(latest.items()) if Path(entry["checkpoint"]).exists()]
    if not fins:
        return None
    spec = SyntheticCorpusSpec(seed=seed)
    signal = np.concatenate([clip_audio(spec, index, emotion, 0) for index, emotion in enumerate(EMOTIONS)])
    frames = frame_signal(torch.from_numpy(signal))
    figure, axes = plt.subplots(1, len(fins), figsize=(3.2 * len(fins), 3.3), squeeze=False)
    for axis, ((feature, arch), checkpoint) in zip(axes[0], fins, strict=True):
        with torch.no_grad():
            predicted = load_fin(checkpoint)(frames)[:, 0].numpy()
        target = compute(feature, frames)[:, 0].numpy()
        r2 = 1 - ((predicted - target) ** 2).sum() / ((target - target.mean()) ** 2).sum()
        axis.scatter(target, predicted, s=2, alpha=0.3)
        low, high = float(min(target.min(), predicted.min())), float(max(target.max(), predicted.max()))
        axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        axis.set(title=f"{feature} · {arch}\nR² {r2:.3f} (output 0)", xlabel="exact", ylabel="FIN")
        axis.title.set_fontsize(9)
    return save_figure(figure, path)


def value_range(values: Sequence[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"


def stopping_table(results: list[dict]) -> str:
    """How each setting's runs ended (``results.json``'s ``stop``): epochs and steps trained, the stop reasons, and
    every run that hit its cap while its monitor was still improving, named: it was compared under-trained."""
    rows, capped = [], []
    for result in results:
        stop = result.get("stop") or {}
        if stop.get("still_improving"):
            capped.append(f"- **{result['run_dir']}** hit its cap at epoch {stop['stopped_epoch']} while "
                          f"{stop['monitor']} was still improving (last gain {stop['epochs_since_best']} epoch(s) "
                          "before): raise training.max_epochs")  # fmt: skip
    settings: dict[str, list[dict]] = {}
    for result in results:
        if result.get("stop"):
            label = result["experiment"] if result["experiment"] != "fin" else f"fin {result['feature']}"
            settings.setdefault(f"{label} ({result.get('arch')})", []).append(result["stop"])
    for setting, stops in sorted(settings.items()):
        reasons = ", ".join(f"{reason} {sum(s['stop_reason'] == reason for s in stops)}"
                            for reason in sorted({s["stop_reason"] for s in stops}))  # fmt: skip
        rows.append([setting, len(stops), value_range([s["stopped_epoch"] for s in stops]),
                     value_range([s["stopped_step"] for s in stops]), reasons])  # fmt: skip
    if not rows:
        return "No run recorded how it stopped (results.json without `stop`: written before finser stopped by rule)."
    table = markdown_table(["setting", "runs", "stopped at epoch", "optimiser steps", "stop reasons"], rows)
    return table + ("\n\n" + "\n".join(capped) if capped else "\n\nNo run hit its cap while still improving.")


ALPHA = 0.05  # the significance level of every verdict
MIN_RUNS = 3  # fewer runs (or pairs) per side than this: "not enough runs", no verdict
CLAIM_SHARE = 0.9  # convergence: the first epoch at this share of the run's own best validation macro F1


def train_fraction(entry: dict) -> float:
    """The share of training clips a run kept (``datamodule.train_fraction``; 1.0 before finser recorded it)."""
    return float(entry.get("train_fraction") or 1.0)


def ser_runs(results: list[dict]) -> list[dict]:
    return [entry for entry in results if is_ser(entry)]


def feature_subset(entry: dict) -> str:
    """The features an SER run's front-end took (``front_end.features``): ``all`` for the five, e.g.
    ``zcr+rms+chroma+mfcc``; a FIN run's ``feature`` is its own and counts as ``all`` here."""
    return str(entry.get("feature") or "all") if is_ser(entry) else "all"


def fin_worth_section(results: list[dict]) -> str:
    """SER runs on a subset of the features beside the same variant and head on all five, paired by (fold, seed):
    what the features left out were worth."""
    full: dict[tuple[str, str], list[dict]] = defaultdict(list)
    subsets: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for entry in ser_runs(results):
        key, subset = (entry.get("variant", "?"), entry.get("head", "?")), feature_subset(entry)
        if subset == "all":
            full[key].append(entry)
        else:
            subsets[(*key, subset)].append(entry)
    if not subsets:
        return (
            "_No SER run on a subset of the features_ (`front_end.features=[...]`, or `make reproduce "
            "LEAVE_ONE_OUT=1`: every FIN left out in turn)."
        )
    rows = []
    for (variant, head, subset), entries in sorted(subsets.items(), key=lambda item: _variant_rank(item[0][0])):
        chosen = subset.split("+")
        added = [f"+{feature}" for feature in chosen if feature not in FEATURES]  # registered beyond the five
        difference = ", ".join([feature for feature in FEATURES if feature not in chosen] + added) or "–"
        scores = [entry["test/f1_macro"] for entry in entries if "test/f1_macro" in entry]
        comparison = paired_test(entries, full.get((variant, head), []))
        rows.append([variant, head, difference, len(entries), mean_std(scores), comparison])
    header = ["variant", "head", "left out (+added)", "runs", "test macro F1", "vs all five (these − all)"]
    return markdown_table(header, rows)


def across_folds(entries: list[dict], metric: str = "test/f1_macro") -> tuple[float, float, dict[object, float]]:
    """Each fold's mean over its seeds, then their mean and sample std across folds (nan below two folds)."""
    per_fold: dict[object, list[float]] = defaultdict(list)
    for entry in entries:
        if metric in entry:
            per_fold[entry.get("fold")].append(entry[metric])
    means = {fold: float(np.mean(values)) for fold, values in sorted(per_fold.items(), key=lambda item: str(item[0]))}
    values = list(means.values())
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return (float(np.mean(values)) if values else math.nan), spread, means


def fold_groups(results: list[dict]) -> dict[tuple[str, str, float], list[dict]]:
    """SER runs over speaker folds, by (variant, head, train fraction)."""
    grouped: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for entry in ser_runs(results):
        if entry.get("fold") is not None:
            grouped[(entry.get("variant", "?"), entry.get("head", "?"), train_fraction(entry))].append(entry)
    return dict(sorted(grouped.items(), key=lambda item: (item[0][2], item[0][1], _variant_rank(item[0][0]))))


def folds_section(results: list[dict]) -> str:
    """Mean ± std across folds (each fold averaged over its seeds), per-fold rows, and tests paired by (fold, seed)."""
    grouped = fold_groups(results)
    if not grouped:
        return "_No runs over speaker folds (split=speaker_folds or emobox_folds)._"
    rows, fold_rows, comparisons = [], [], []
    for (variant, head, fraction), entries in grouped.items():
        mean, spread, means = across_folds(entries)
        seeds = len({entry.get("seed") for entry in entries})
        rows.append([variant, head, fraction, len(means), seeds, len(entries), f"{mean:.3f}" +
                     ("" if math.isnan(spread) else f" ± {spread:.3f}")])  # fmt: skip
        for fold in means:
            in_fold = [entry["test/f1_macro"] for entry in entries if entry.get("fold") == fold]
            fold_rows.append([variant, head, fraction, fold, len(in_fold), mean_std(in_fold)])
        if variant == "finetuned":
            for other in ("baseline", "scratch"):
                if (other, head, fraction) in grouped:
                    comparisons.append(f"- {head} head, train fraction {fraction}, fine-tuned vs {other} (macro F1): "
                                       f"{paired_test(entries, grouped[(other, head, fraction)])}")  # fmt: skip
    header = ["variant", "head", "train fraction", "folds", "seeds", "runs", "macro F1 (mean ± std across folds)"]
    per_fold = markdown_table(
        ["variant", "head", "train fraction", "fold", "seeds", "macro F1 (over seeds)"], fold_rows
    )
    return "\n\n".join([markdown_table(header, rows), "Per fold:", per_fold, "\n".join(comparisons)]).strip()


def plot_fractions(results: list[dict], path: Path) -> Path | None:
    """Test macro F1 against the training fraction, one line per variant · head, ± one std over its runs."""
    by_line: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for entry in ser_runs(results):
        if "test/f1_macro" in entry:
            label = f"{entry.get('variant', '?')} · {entry.get('head', '?')}"
            by_line[label][train_fraction(entry)].append(entry["test/f1_macro"])
    if len({fraction for points in by_line.values() for fraction in points}) < 2:
        return None
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, points in sorted(by_line.items(), key=lambda item: _variant_rank(item[0].split(" · ")[0])):
        fractions = sorted(points)
        means = [np.mean(points[fraction]) for fraction in fractions]
        spreads = [np.std(points[fraction], ddof=1) if len(points[fraction]) > 1 else 0.0 for fraction in fractions]
        axis.errorbar(fractions, means, yerr=spreads, marker="o", capsize=3, label=label)
    axis.set(xscale="log", xlabel="training fraction (datamodule.train_fraction)", ylabel="test macro F1")
    return save_figure(figure, path, axis)


def own_probe(entry: dict) -> float | None:
    """Test macro F1 of the probe on what the run's head sees: the frozen FINs' values where they were probed, the
    exact features otherwise."""
    return entry.get(f"{OWN_PROBE}test/f1_macro", entry.get(f"{PROBE}test/f1_macro"))


def below_probe(entry: dict) -> bool:
    """The run scored under its own linear probe: under-trained, so it says nothing about what FINs do."""
    probe = own_probe(entry)
    return probe is not None and entry.get("test/f1_macro", math.inf) < probe


def verdict(count: int, claimed_direction: bool, p_value: float) -> str:
    if count < MIN_RUNS:
        return "**not enough runs**"
    return "**supported**" if claimed_direction and p_value < ALPHA else "**not supported**"


def paired_values(first: list[dict], second: list[dict], value: Callable[[dict], float | None]) -> np.ndarray:
    """(first, second) values of the runs both sides ran at one (fold, seed), skipping runs without a value."""
    others = {run_key(entry): value(entry) for entry in second}
    pairs = [(value(entry), others.get(run_key(entry))) for entry in first]
    return np.array([pair for pair in pairs if None not in pair], dtype=float).reshape(-1, 2)


def paired_claim(pairs: np.ndarray, unit: str, claim_is_less: bool) -> str:
    """The mean paired difference (first − second), its paired t-test and the verdict for the claimed sign."""
    if len(pairs) < MIN_RUNS:
        return f"{len(pairs)} (fold, seed) pair(s): {verdict(len(pairs), False, 1.0)}"
    differences = pairs[:, 0] - pairs[:, 1]
    p_value = 1.0 if np.allclose(differences, differences[0]) else float(stats.ttest_rel(*pairs.T).pvalue)
    direction = differences.mean() < 0 if claim_is_less else differences.mean() > 0
    spread = f"{differences.std(ddof=1):.3f}" + (f" {unit}" if unit else "")
    return (f"Δ = {differences.mean():+.3f} ± {spread} over {len(pairs)} (fold, seed) pairs, paired t-test "
            f"p = {p_value:.3f}: {verdict(len(pairs), direction, p_value)}")  # fmt: skip


def variance_claim(first: list[float], second: list[float]) -> str:
    """Levene's test (mean-centred, as Levene's original) that the fine-tuned runs' macro F1 varies less."""
    if min(len(first), len(second)) < MIN_RUNS:
        return f"{len(first)} and {len(second)} run(s): {verdict(0, False, 1.0)}"
    spread_first, spread_second = np.std(first, ddof=1), np.std(second, ddof=1)
    result = stats.levene(first, second, center="mean")
    p_value = 1.0 if math.isnan(result.pvalue) else float(result.pvalue)
    return (f"std {spread_first:.3f} ({len(first)} runs) vs {spread_second:.3f} ({len(second)} runs), Levene's "
            f"W = {result.statistic:.3f}, p = {p_value:.3f}: "
            f"{verdict(min(len(first), len(second)), spread_first < spread_second, p_value)}")  # fmt: skip


def convergence(entry: dict, share: float = CLAIM_SHARE) -> tuple[int, int] | None:
    """Epochs and optimiser steps until validation macro F1 first reached ``share`` × the run's own best."""
    curve = read_metrics_csv(entry["run_dir"]).get("val/f1_macro", []) if "run_dir" in entry else []
    if not curve:
        return None
    best = max(value for _, value in curve)
    epoch = next(epoch for epoch, value in curve if value >= share * best)
    return epoch + 1, validation_steps(entry["run_dir"]).get(epoch, 0)


def compare(finetuned: list[dict], other: list[dict]) -> Iterator[tuple[str, str]]:
    """(claim, its line) for fine-tuned runs against another variant's at the same head and fraction."""
    f1 = paired_values(finetuned, other, lambda entry: entry.get("test/f1_macro"))
    yield "little data", f"test macro F1 {paired_claim(f1, '', claim_is_less=False)}"
    scores = [[entry["test/f1_macro"] for entry in runs if "test/f1_macro" in entry] for runs in (finetuned, other)]
    yield "lower variance", f"test macro F1 {variance_claim(*scores)}"
    for index, unit in ((0, "epochs"), (1, "optimiser steps")):
        reached = paired_values(finetuned, other, lambda entry, i=index: (convergence(entry) or (None, None))[i])
        yield (
            "faster convergence",
            f"{unit} to {CLAIM_SHARE} × own best val macro F1 " + paired_claim(reached, unit, claim_is_less=True),
        )


def claims_section(results: list[dict]) -> str:
    """The FIN papers' three claims, each tested on the runs given, fine-tuned FINs against the baseline and against
    the same network from random weights (scratch); runs below their linear probe are named and left out."""
    runs = ser_runs(results)
    left_out = [entry for entry in runs if below_probe(entry)]
    kept = [entry for entry in runs if not below_probe(entry)]
    by_setting: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for entry in kept:
        by_setting[(entry.get("variant", "?"), entry.get("head", "?"), train_fraction(entry))].append(entry)
    lines: dict[str, list[str]] = defaultdict(list)
    for (variant, head, fraction), finetuned in sorted(by_setting.items(), key=lambda item: (item[0][1], item[0][2])):
        for other in ("baseline", "scratch") if variant == "finetuned" else ():
            setting = f"- {head} head, train fraction {fraction}, fine-tuned vs {other}:"
            for name, line in compare(finetuned, by_setting.get((other, head, fraction), [])):
                lines[name].append(f"{setting} {line}")
    claims = {
        "little data": "FINs help most with little data: fine-tuned minus the other variant's test macro F1 at each "
        "training fraction (a larger gain at the small fractions is the claim).",
        "lower variance": "FINs vary less from run to run: the spread of per-run test macro F1 at each fraction.",
        "faster convergence": "FINs converge faster: fine-tuned minus the other variant's epochs and steps, paired.",
    }
    parts = [f"Verdicts at p < {ALPHA}; fewer than {MIN_RUNS} runs or pairs on a side is not enough runs."]
    if left_out:
        parts.append("Left out, below their linear probe (under-trained):\n" + "\n".join(
            f"- {entry.get('run_dir', '?')} ({entry.get('variant')}, macro F1 {entry['test/f1_macro']:.3f} < probe "
            f"{own_probe(entry):.3f})" for entry in left_out))  # fmt: skip
    for name, text in claims.items():
        found = lines[name] or ["- no fine-tuned runs with a baseline or scratch to compare: **not enough runs**"]
        parts.append(f"### {name}\n\n{text}\n\n" + "\n".join(found))
    return "\n\n".join(parts)


REPORT_TITLE = "# finser report"
FIGURES = {  # file name (without .png) → title in the report
    "fin_predictions": "FIN prediction vs target (unseen speech)",
    "fin_learning_curves": "FIN validation R² per feature",
    "ser_learning_curves": "SER validation macro F1 per variant",
    "ser_confusion": "SER test confusion matrices (summed over seeds)",
    "ser_fractions": "SER test macro F1 against the training fraction",
}


def study_ser_line() -> str:
    """The study's own SER numbers, for scale: single runs on its file split of the four corpora, not a row any
    other data can be paired with."""
    scores = ", ".join(f"{variant} {SER_RESULTS[variant]['test/f1_macro']:.2f}" for variant in VARIANT_ORDER
                       if variant in SER_RESULTS)  # fmt: skip
    return f"The study's test macro F1 (single runs, its own split of RAVDESS, CREMA-D, TESS and SAVEE): {scores}."


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path = "outputs/report", overwrite: bool = False
) -> Path:
    """Write report.md and its PNG figures under ``out_dir``; returns the report's path. A folder whose report.md
    finser did not write (or that holds figures of those names without one) is refused unless ``overwrite``."""
    out_dir = check_output_folder(
        out_dir, "out", ["report.md", *(f"{name}.png" for name in FIGURES)], first_line_is(REPORT_TITLE), overwrite
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    every_run = find_results(run_dirs)
    results = [entry for entry in every_run if feature_subset(entry) == "all"]  # subsets: their own section
    full_data = [entry for entry in results if train_fraction(entry) == 1.0]  # fractions: their own section
    grouped = ser_groups(full_data)
    plots = {
        "fin_predictions": lambda path: plot_fin_predictions(results, path),
        "fin_learning_curves": lambda path: plot_learning_curves(
            {f"{e}": [r for r in results if r.get("experiment") == "fin" and r["feature"] == e]
             for e in REGISTERED_FEATURES}, "val/r2", path, "FIN pre-training"),
        "ser_learning_curves": lambda path: plot_learning_curves(
            {group_label(key): entries for key, entries in grouped.items()}, "val/f1_macro", path, "SER training"),
        "ser_confusion": lambda path: plot_confusions(grouped, path),
        "ser_fractions": lambda path: plot_fractions(results, path),
    }  # fmt: skip
    figures = {FIGURES[name]: plot(out_dir / f"{name}.png") for name, plot in plots.items()}
    sections = [
        REPORT_TITLE,
        f"{len(every_run)} runs from {', '.join(map(str, run_dirs))}.",
        "## FINs\n\nR² on the test split (unseen speakers) and on each evaluation corpus; variance-weighted for "
        "multi-output features. FLOPs count every operation (matmul and conv FLOPs plus one per element of each "
        "other op, as `make bench`); the study's FINs are almost all matmul and conv, so its MFLOP compare "
        "directly.\n\n" + fin_table(results),
        "## SER\n\nTest metrics as mean ± std over seeds (sample std); paired comparisons match runs by seed. Each "
        "run's linear probe is a logistic regression on the same clips' time-mean exact features (standardised, C "
        "chosen on the validation clips): a network below it has not learned what a linear model finds in its own "
        "input. A frozen FIN front-end's head sees the FINs' values instead, so its runs are also probed on those "
        "('on its own input'), and that probe decides whether they are flagged.\n\n"
        + ser_table(full_data)
        + "\n\n"
        + study_ser_line(),
        "## Front-ends\n\nEvery front-end under the same data, split, head, schedule and seeds (docs/ser.md, 'The "
        "controls'): its parameters and operations per frame (front-end and compression, all ops counted as for the "
        "FINs), test macro F1 as mean ± std over seeds (and folds where run), the linear probe of the same clips, and "
        "the paired difference to the fine-tuned FINs (runs matched by seed and fold).\n\n"
        + front_end_table(full_data),
        "## What each FIN is worth\n\nSER runs whose front-end took a subset of the features (`front_end.features`) "
        "against the same variant and head on all five, paired by (fold, seed): a negative Δ is what the features "
        "left out added (a positive one, what a feature beyond the five, +name, added).\n\n"
        + fin_worth_section(every_run),
        "## How the runs stopped\n\nEach run trains until its checkpoint monitor stops improving (patience and "
        "floor in its config), with `training.max_epochs` as a cap.\n\n" + stopping_table(every_run),
        "## FIN drift\n\nEach FIN's R² against its exact feature on the SER test clips' frames after SER training "
        "(variance-weighted for multi-output features), mean ± std over seeds; in brackets its R² in pre-training "
        "(the published FIN's test split). Frozen FINs do not change: any gap to the bracket is the other frames; "
        "fine-tuned ones show how far SER training moved them off the feature they imitated.\n\n"
        + drift_table(results),
        "## Across speaker folds\n\nSER runs over speaker folds: each fold's test macro F1 averaged over its "
        "seeds, then mean ± std across folds; comparisons pair runs by (fold, seed).\n\n" + folds_section(results),
        "## What the FIN papers claim\n\n" + claims_section(results),
        "## Figures",
        *[f"### {title}\n\n![{title}]({path.name})" for title, path in figures.items() if path is not None],
    ]
    report = out_dir / "report.md"
    with atomic_text(report) as handle:
        handle.write("\n\n".join(sections) + "\n")
    return report

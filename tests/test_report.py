"""The report reads finished runs (results.json, csv/metrics.csv) and writes tables and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from finser.data.labels import EMOTIONS
from finser.errors import FinserError
from finser.models.checkpoint import save_checkpoint
from finser.models.fin import spectral_fin
from finser.report import (
    across_folds,
    confusion_panels,
    plot_confusions,
    read_metrics_csv,
    variance_claim,
    write_report,
)
from finser.study import SER_RESULTS


def fake_run(root: Path, name: str, results: dict, curve: list[float] | None = None, metric: str = "") -> None:
    run = root / name
    (run / "csv").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(results))
    if curve:
        lines = [f"epoch,step,{metric}"] + [f"{epoch},{epoch * 10},{value}" for epoch, value in enumerate(curve)]
        (run / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")


PROBE_F1 = [0.55, 0.60, 0.53]  # one linear probe per seed, the same for every variant
DRIFT = {"finetuned": [0.80, 0.70, 0.75], "scratch": [-0.5, -0.4, -0.6]}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    checkpoint = save_checkpoint(
        spectral_fin("rms"), {"_target_": "finser.models.fin.spectral_fin", "feature": "rms"},
        tmp_path / "fins" / "rms_spectral.ckpt", kind="fin",
    )  # fmt: skip
    fake_run(root, "fin_rms", {"experiment": "fin", "feature": "rms", "arch": "spectral", "variant": "pretrain",
                               "test/r2": 0.991, "eval/esd/r2": 0.95, "checkpoint": str(checkpoint)},
             [0.90, 0.95, 0.99], "val/r2")  # fmt: skip
    confusion = np.eye(len(EMOTIONS), dtype=int).tolist()
    for variant, scores in {"finetuned": [0.60, 0.64, 0.62], "scratch": [0.50, 0.55, 0.51]}.items():
        for seed, score in enumerate(scores):
            fake_run(root, f"ser_{variant}_{seed}", {
                "experiment": f"ser_fin_{variant}", "feature": "all", "arch": "spectral", "variant": variant,
                "head": "conv1d", "seed": seed, "test/acc": score + 0.01, "test/f1_macro": score,
                "test/f1_weighted": score, "test/confusion": confusion,
                **{f"reference/linear_probe/test/{key}": PROBE_F1[seed] for key in ("acc", "f1_macro", "f1_weighted")},
                "fin_drift/rms/r2": DRIFT[variant][seed],
                **({"fin_drift/rms/r2_pretrained": 0.991} if variant == "finetuned" else {}),
            }, [score - 0.2, score - 0.1, score], "val/f1_macro")  # fmt: skip
    return root


def test_report_tables_and_figures(runs: Path, tmp_path: Path) -> None:
    report = write_report([runs], tmp_path / "report")
    text = report.read_text()
    assert "| rms | 1 | spectral |" in text and "0.991" in text and "0.950" in text
    assert f"{np.mean([0.60, 0.64, 0.62]):.3f} ± {np.std([0.60, 0.64, 0.62], ddof=1):.3f}" in text
    assert "fine-tuned vs scratch" in text and "paired t-test p =" in text
    probe = f"{np.mean(PROBE_F1):.3f} ± {np.std(PROBE_F1, ddof=1):.3f}"
    assert f"| linear probe | logistic regression | – | 3 | {probe} | {probe} | {probe} |" in text
    flagged = [line.split(" | ")[0] for line in text.splitlines() if "**below its linear probe**" in line]
    assert flagged == ["| scratch"]  # 0.52 < 0.56; fine-tuned's 0.62 is above
    assert "scratch vs its linear probe (macro F1): Δ = -0.040" in text  # paired by seed: 0.52 - 0.56
    assert "| finetuned | conv1d | – | 3 | – | 0.750 ± 0.050 (0.991) |" in text  # FIN drift: after SER (pre-training)
    assert "| scratch | conv1d | – | 3 | – | -0.500 ± 0.100 |" in text
    for figure in ("fin_predictions.png", "fin_learning_curves.png", "ser_learning_curves.png", "ser_confusion.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 10_000
        assert f"({figure})" in text


def test_report_without_runs_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FinserError, match=r"no results\.json"):
        write_report([tmp_path], tmp_path / "report")
    with pytest.raises(FinserError, match="does not exist"):
        write_report([tmp_path / "missing"], tmp_path / "report")


def test_learning_curve_of_a_resumed_or_restarted_run_reads_its_last_attempt(tmp_path: Path) -> None:
    # csv/metrics.csv is appended to by each attempt: epochs 0-2, a resume from epoch 2, then a restart from 0.
    attempts = [(0, 0.1), (1, 0.2), (2, 0.3), (2, 0.35), (3, 0.4), (0, 0.5), (1, 0.6)]
    fake_run(tmp_path, "run", {})
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    for rows, curve in ((attempts[:5], [(0, 0.1), (1, 0.2), (2, 0.35), (3, 0.4)]), (attempts, [(0, 0.5), (1, 0.6)])):
        metrics.write_text(
            "epoch,step,val/r2\n" + "".join(f"{epoch},{step},{value}\n" for step, (epoch, value) in enumerate(rows))
        )
        assert read_metrics_csv(str(tmp_path / "run"))["val/r2"] == curve


def test_leave_one_corpus_out_runs_get_one_row_per_held_out_corpus(tmp_path: Path) -> None:
    for held_out, scores in {"savee": [0.30, 0.34], "tess": [0.50, 0.56]}.items():
        for seed, score in enumerate(scores):
            fake_run(tmp_path / "runs", f"{held_out}_{seed}", {
                "experiment": "ser_baseline", "variant": "baseline", "head": "conv1d", "held_out": held_out,
                "seed": seed, "test/f1_macro": score, "reference/linear_probe/test/f1_macro": score + 0.1,
            })  # fmt: skip
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    savee = "| baseline | conv1d | savee | 2 | – | 0.320 ± 0.028 | – | 0.420 ± 0.028 | **below its linear probe** |"
    assert savee in text
    assert "| baseline | conv1d | tess | 2 | – | 0.530 ± 0.042 |" in text
    assert "| linear probe | logistic regression | savee | 2 | – | 0.420 ± 0.028 | – |" in text
    assert "conv1d head, tested on tess, baseline vs its linear probe (macro F1): Δ = -0.100" in text


def test_the_report_names_every_run_that_hit_its_cap_while_still_improving(tmp_path: Path) -> None:
    """How each setting stopped, and the under-trained runs by name: a capped run still improving was compared before
    it had learned."""
    for seed, (reason, epoch, since_best) in enumerate([("converged", 65, 15), ("converged", 80, 15), ("cap", 150, 3)]):
        stop = {
            "stop_reason": reason,
            "stopped_epoch": epoch,
            "stopped_step": 12 * epoch,
            "monitor": "val/f1_macro",
            "patience": 15,
            "epochs_since_best": since_best,
            "still_improving": reason == "cap",
        }
        fake_run(tmp_path / "runs", f"ser_baseline_{seed}", {
            "experiment": "ser_baseline", "feature": "all", "arch": "exact", "variant": "baseline", "head": "conv1d",
            "seed": seed, "test/acc": 0.5, "test/f1_macro": 0.5, "test/f1_weighted": 0.5, "stop": stop})  # fmt: skip
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    assert "| ser_baseline (exact) | 3 | 65–150 | 780–1800 | cap 1, converged 2 |" in text
    capped = [line for line in text.splitlines() if "still improving" in line and line.startswith("- ")]
    run = tmp_path / "runs" / "ser_baseline_2"
    assert capped == [f"- **{run}** hit its cap at epoch 150 while val/f1_macro was still improving (last gain 3 "
                      "epoch(s) before): raise training.max_epochs"]  # fmt: skip


def test_across_folds_averages_seeds_within_a_fold_then_folds() -> None:
    folds = [[0.5, 0.7], [0.8], [0.4, 0.6]]
    entries = [{"fold": fold, "seed": seed, "test/f1_macro": score}
               for fold, scores in enumerate(folds) for seed, score in enumerate(scores)]  # fmt: skip
    mean, spread, per_fold = across_folds(entries)
    assert per_fold == pytest.approx({0: 0.6, 1: 0.8, 2: 0.5})
    assert mean == pytest.approx((0.6 + 0.8 + 0.5) / 3)
    deviations = [0.6 - 1.9 / 3, 0.8 - 1.9 / 3, 0.5 - 1.9 / 3]
    assert spread == pytest.approx((sum(d * d for d in deviations) / 2) ** 0.5)


def test_levenes_test_matches_the_hand_computed_statistic() -> None:
    # |x - mean|: 0.02 0 0.02 (mean 1/75) and 0.1 0 0.1 (mean 1/15), grand mean 0.04:
    # W = (6 - 2) / (2 - 1) × 3 × 2 × (0.08 / 3)² / (0.8 / 3000 + 20 / 3000) = 32 / 13.
    line = variance_claim([0.60, 0.62, 0.64], [0.50, 0.60, 0.70])
    assert f"Levene's W = {32 / 13:.3f}, p = {stats.f.sf(32 / 13, 1, 4):.3f}" in line
    assert "std 0.020 (3 runs) vs 0.100 (3 runs)" in line and "**not supported**" in line  # p = 0.19


def claim_runs(root: Path, seeds: range, folds: range) -> None:
    """Three variants at two fractions: fine-tuned gains (by varying amounts) at 0.1 only, converges sooner, and
    one scratch run falls below its linear probe."""
    for variant in ("baseline", "finetuned", "scratch"):
        for fraction in (0.1, 1.0):
            for fold in folds:
                for seed in seeds:
                    score = 0.5 + 0.01 * fold + 0.02 * seed
                    if variant == "finetuned":
                        score += 0.1 + 0.01 * (fold + seed) if fraction == 0.1 else 0.01 * (-1) ** (fold + seed)
                    probe = 0.9 if (variant, fraction, fold, seed) == ("scratch", 1.0, 0, 0) else 0.3
                    rise = 1 + (fold + seed) % 2 if variant == "finetuned" else 4 + seed
                    curve = [score * min(1.0, (epoch + 1) / rise) for epoch in range(8)]
                    fake_run(root, f"{variant}_{fraction}_{fold}_{seed}", {
                        "experiment": f"ser_{variant}", "variant": variant, "head": "conv1d", "seed": seed,
                        "fold": fold, "train_fraction": fraction, "test/f1_macro": score,
                        "reference/linear_probe/test/f1_macro": probe}, curve, "val/f1_macro")  # fmt: skip


def claim_lines(text: str, claim: str) -> list[str]:
    section = text.split(f"### {claim}\n\n", 1)[1].split("\n\n##", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def test_the_claims_are_tested_with_a_verdict_each(tmp_path: Path) -> None:
    claim_runs(tmp_path / "runs", seeds=range(2), folds=range(2))
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    little = claim_lines(text, "little data")
    assert any("fraction 0.1, fine-tuned vs baseline" in line and "over 4 (fold, seed) pairs" in line
               and "**supported**" in line for line in little)  # fmt: skip
    assert any("fraction 1.0, fine-tuned vs baseline" in line and "**not supported**" in line for line in little)
    assert any("fraction 1.0, fine-tuned vs scratch" in line and "3 (fold, seed) pairs" in line for line in little)
    assert str(tmp_path / "runs" / "scratch_1.0_0_0") in text.split("### little data")[0]  # named, left out
    faster = claim_lines(text, "faster convergence")
    epochs = [line for line in faster if "fraction 0.1, fine-tuned vs baseline: epochs" in line]
    assert len(epochs) == 1 and "Δ = -3.000 ± 0.816 epochs" in epochs[0] and "**supported**" in epochs[0]
    assert any("Δ = -30.000 ± 8.165 optimiser steps" in line for line in faster)
    assert len(claim_lines(text, "lower variance")) == 4  # 2 fractions × 2 other variants
    assert "| finetuned | conv1d | 0.1 | 2 | 2 | 4 |" in text  # across folds: 2 folds, 2 seeds, 4 runs
    assert "| finetuned | conv1d | 0.1 | 1 | 2 |" in text  # its per-fold row for fold 1
    assert (tmp_path / "report" / "ser_fractions.png").stat().st_size > 10_000
    assert "(fold, seed) pairs, paired t-test" in text.split("## SER", 1)[1].split("\n## ", 1)[0]  # not 'seeds'


def test_one_seed_is_not_enough_runs_for_any_claim(tmp_path: Path) -> None:
    claim_runs(tmp_path / "runs", seeds=range(1), folds=range(1))
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    for claim in ("little data", "lower variance", "faster convergence"):
        lines = claim_lines(text, claim)
        assert lines and all(line.endswith("**not enough runs**") for line in lines)


def test_the_front_end_table_costs_each_front_end_and_pairs_it_with_the_fine_tuned_fins(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    root = tmp_path / "runs"
    config = {"_target_": "finser.models.ser.SERModel", "compress": {"_target_": "finser.models.frontends.LogPower"},
              "front_end": {"_target_": "finser.models.frontends.SincNetFrontEnd", "n_filters": 64},
              "head": {"_target_": "finser.models.ser.Conv1dHead", "n_features": 64}}  # fmt: skip
    checkpoint = save_checkpoint(instantiate(config), config, tmp_path / "ser_model.ckpt", kind="ser",
                                 emotions=list(EMOTIONS))  # fmt: skip
    scores = {"finetuned": [0.60, 0.64, 0.62], "sincnet": [0.50, 0.58, 0.51]}
    for variant, values in scores.items():
        for seed, f1 in enumerate(values):
            fake_run(root, f"{variant}_{seed}", {
                "experiment": f"ser_{variant}", "variant": variant, "head": "conv1d", "seed": seed,
                "test/f1_macro": f1, "reference/linear_probe/test/f1_macro": PROBE_F1[seed],
                "checkpoint": str(checkpoint) if variant == "sincnet" else "",
            })  # fmt: skip
    report = write_report([root], tmp_path / "report").read_text()
    section = report.split("## Front-ends")[1].split("##")[0]
    (row,) = [line for line in section.splitlines() if line.startswith("| SincNet")]
    differences = np.subtract(scores["sincnet"], scores["finetuned"])
    assert "| 128 |" in row  # two learnable cut-offs per filter, a log has none
    assert f"Δ = {differences.mean():+.3f} ± {differences.std(ddof=1):.3f} over 3 seeds" in row
    assert f"{np.mean(PROBE_F1):.3f}" in row


def test_the_report_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    """``out=`` may be a folder of the user's: a report.md (or a figure's name) finser did not write there is
    refused before anything is written, unless ``overwrite``; a report finser wrote is replaced whole."""
    fake_run(tmp_path / "runs", "a", {"experiment": "ser_baseline", "variant": "baseline", "head": "conv1d",
                                      "seed": 0, "test/f1_macro": 0.5})  # fmt: skip
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("# my notes\n")
    with pytest.raises(FinserError, match=r"notes/report\.md exists and this command did not write it"):
        write_report([tmp_path / "runs"], notes)
    assert (notes / "report.md").read_text() == "# my notes\n"
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "ser_confusion.png").write_bytes(b"mine")
    with pytest.raises(FinserError, match=r"ser_confusion\.png exists"):
        write_report([tmp_path / "runs"], tmp_path / "figures")
    assert write_report([tmp_path / "runs"], notes, overwrite=True).read_text().startswith("# finser report\n")
    text = write_report([tmp_path / "runs"], notes).read_text()  # a report it wrote: replaced
    assert text.startswith("# finser report\n")
    assert f"finetuned {SER_RESULTS['finetuned']['test/f1_macro']:.2f}" in text  # the study's numbers, for scale
    (tmp_path / "file").write_text("x")
    with pytest.raises(FinserError, match="is a file, not a folder"):
        write_report([tmp_path / "runs"], tmp_path / "file" / "report")
    assert [path.name for path in notes.iterdir() if path.name.startswith(".")] == []  # no temporary left


def test_runs_on_a_subset_of_the_features_are_paired_with_all_five_and_kept_out_of_the_main_tables(
    tmp_path: Path,
) -> None:
    for seed, (full, without_mel) in enumerate([(0.50, 0.41), (0.56, 0.45), (0.53, 0.47)]):
        for feature, score in (("all", full), ("zcr+rms+chroma+mfcc", without_mel)):
            fake_run(tmp_path / "runs", f"{feature}_{seed}", {
                "experiment": "ser_fin_finetuned", "variant": "finetuned", "head": "conv1d", "feature": feature,
                "seed": seed, "test/f1_macro": score,
            })  # fmt: skip
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    differences = np.array([0.41 - 0.50, 0.45 - 0.56, 0.47 - 0.53])
    p_value = stats.ttest_rel([0.41, 0.45, 0.47], [0.50, 0.56, 0.53]).pvalue
    row = (f"| finetuned | conv1d | melspec | 3 | 0.443 ± 0.031 | Δ = {differences.mean():+.3f} ± "
           f"{differences.std(ddof=1):.3f} over 3 seeds, paired t-test p = {p_value:.3f} |")  # fmt: skip
    assert row in text
    assert "| finetuned | conv1d | – | 3 | " in text  # the SER table: the three runs on all five features only


def test_a_feature_the_study_had_not_gets_its_fin_row_and_its_ser_runs_a_pairing(tmp_path: Path) -> None:
    """A registered feature beyond the five: its FIN has no study R² to stand beside (a dash, not a KeyError), and
    SER runs that add it to the five are paired with the five as a subset's are."""
    config = {"_target_": "finser.models.fin.spectral_fin", "feature": "spectral_centroid"}
    checkpoint = save_checkpoint(
        spectral_fin("spectral_centroid"), config, tmp_path / "fins" / "centroid.ckpt", kind="fin"
    )
    fake_run(tmp_path / "runs", "fin", {"experiment": "fin", "feature": "spectral_centroid", "arch": "spectral",
                                        "variant": "pretrain", "test/r2": 0.997, "checkpoint": str(checkpoint)},
             [0.99, 0.997], "val/r2")  # fmt: skip
    six = "zcr+rms+chroma+mfcc+melspec+spectral_centroid"
    for seed, (full, more) in enumerate([(0.50, 0.52), (0.56, 0.57), (0.53, 0.56)]):
        for feature, score in (("all", full), (six, more)):
            fake_run(tmp_path / "runs", f"{feature}_{seed}", {
                "experiment": "ser_fin_finetuned", "variant": "finetuned", "head": "conv1d", "feature": feature,
                "seed": seed, "test/f1_macro": score,
            })  # fmt: skip
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    fin_row = next(line for line in text.splitlines() if line.startswith("| spectral_centroid | 1 | spectral |"))
    assert "0.997" in fin_row and fin_row.endswith("| – (no FIN in the study) |")
    differences = np.array([0.52 - 0.50, 0.57 - 0.56, 0.56 - 0.53])
    assert f"| finetuned | conv1d | +spectral_centroid | 3 | 0.550 ± 0.026 | Δ = {differences.mean():+.3f}" in text


def test_confusions_of_runs_with_other_emotion_sets_are_never_summed(tmp_path: Path) -> None:
    four = ["neutral", "happy", "sad", "angry"]
    union = {"variant": "baseline", "head": "conv1d", "test/f1_macro": 0.5, "emotions": list(EMOTIONS),
             "test/confusion": np.eye(8, dtype=int).tolist()}  # fmt: skip
    iemocap = {**union, "emotions": four, "test/confusion": (2 * np.eye(4, dtype=int)).tolist()}
    grouped = {("baseline", "conv1d", "–"): [union, {**union, "seed": 1}, iemocap]}
    panels = confusion_panels(grouped)
    assert [(labels, matrix.trace()) for _, matrix, labels in panels] == [(list(EMOTIONS), 16), (four, 8)]
    assert "4 emotions" in panels[1][0] and "2 seed(s)" in panels[0][0]
    assert plot_confusions(grouped, tmp_path / "confusion.png").is_file()


def test_frozen_runs_are_flagged_by_the_probe_on_their_own_input(tmp_path: Path) -> None:
    """A frozen FIN head sees the FINs' values: scored above the probe on those but below the exact features' probe,
    it has learned what its input holds; the table shows both probes, and only a run below its own is flagged."""
    for seed, score in enumerate([0.50, 0.54]):
        fake_run(tmp_path / "runs", f"frozen_{seed}", {
            "experiment": "ser_fin_frozen", "variant": "frozen", "head": "conv1d", "seed": seed,
            "test/f1_macro": score, "reference/linear_probe/test/f1_macro": score + 0.1,
            "reference/own_input_probe/test/f1_macro": score - 0.05,
        })  # fmt: skip
        fake_run(tmp_path / "runs", f"baseline_{seed}", {
            "experiment": "ser_baseline", "variant": "baseline", "head": "conv1d", "seed": seed,
            "test/f1_macro": score, "reference/linear_probe/test/f1_macro": score + 0.1,
        })  # fmt: skip
    text = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    assert (
        "| frozen | conv1d | – | 2 | – | 0.520 ± 0.028 | – | 0.620 ± 0.028 (on its own input: 0.470 ± 0.028) |  |"
        in text
    )
    assert "| baseline | conv1d | – | 2 | – | 0.520 ± 0.028 | – | 0.620 ± 0.028 | **below its linear probe** |" in text

"""Section 2, FIN cost: each FIN's parameters, FLOPs per frame and frames/s beside the study's, its published test
R² and the spectral FIN's R² before any training."""

from __future__ import annotations

from benchmarks import REPO
from benchmarks.timing import at_threads, best_time, fmt
from finser import study
from finser.report import markdown_table

EXACT = "spectral, stride=1"  # RMS/ZCR reading every sample: the 'before' of the strided defaults
STRIDED = ("rms", "zcr")


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


def run(frames, repeats: int) -> dict:
    """Per FIN variant (see ``fin_variants``): parameters, FLOPs, inference frames/s at 2 and 1 threads, the
    published test R² and, for the spectral FINs, R² at init on ``frames`` and on white noise."""
    import torch

    from finser import features
    from finser.models.cost import count_operations

    results = {}
    probe = frames[:16].contiguous()
    targets_all = features.compute_all(frames)
    noise = white_noise(2048)
    noise_targets = features.compute_all(noise)
    for feature in features.REGISTERED_FEATURES:
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


def versus_study(row: dict) -> tuple[str, str, str, str]:
    """The study's params / MFLOP, its FLOPs over ours (matmul, all ops) and its R²: dashes for a feature it had no
    FIN for (a registered feature beyond its five)."""
    feature = row["feature"]
    if feature not in study.FIN_MACS:
        return ("— (not in the study)", "—", "—", "—")
    study_flops = 2 * study.FIN_MACS[feature]
    return (
        f"{study.FIN_PARAMETERS[feature] / 1e3:,.0f} K / {fmt(study_flops / 1e6)}",
        fmt(study_flops / row["flops_per_frame"]) + "×" if row["flops_per_frame"] else "— (no mm)",
        fmt(study_flops / row["all_ops_per_frame"]) + "×",
        f"{study.FIN_R2[feature][0]:.2f}",
    )


def markdown(results: dict) -> str:
    """The section's text: how operations are counted, then one row per FIN beside the study's."""
    rows = []
    for row in results.values():
        r2 = row["r2_published"]
        *study_cost, study_r2 = versus_study(row)
        rows.append(
            [
                row["feature"],
                row["arch"],
                f"{row['params']:,}",
                mflop(row["flops_per_frame"]),
                mflop(row["all_ops_per_frame"]),
                *study_cost,
                f"{fmt(row['frames_per_s'])} / {fmt(row['frames_per_s_1_thread'])}",
                "—" if r2 is None else f"{r2:.4f}",
                "—" if row["r2_at_init"] is None else f"{row['r2_at_init']:.4f}",
                "—"
                if row["r2_at_init_white_noise"] is None
                else f"{row['r2_at_init_white_noise']:.4f} / {100 * row['relative_error_white_noise']:.1f} %",
                study_r2,
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
            "transcendental functions counted as one. The study's MFLOP = 2 × its MACs (docs/ser.md, 'The study'). "
            "Published R²: `outputs/fins/<feature>_<arch>.ckpt` (test split of the corpus it was trained on, "
            "synthetic unless re-run; '—' where the file holds another shape, e.g. RMS/ZCR published "
            "before their stride); R² at init: the spectral FIN before any training, on the benchmark's clips. "
            "White noise: 2,048 frames at levels spread over 60 dB, R² and mean |error| ÷ mean |target|; its ZCR "
            "is ≈ 0.5 in every frame, varying only by the sampling noise of 2,047 pairs (± 0.011), so the strided "
            "ZCR's R² there compares sampling noise with sampling noise (its error stays ~3 %). `spectral, "
            "stride=1`: RMS/ZCR reading every sample (pair), the exact variant and the cost before the stride. "
            "Inference frames/s at batch 256 (conv: 64).\n",
            markdown_table(header, rows),
        ]
    )

"""finser's benchmark: feature targets, FIN cost, training throughput, start-up, the data pipeline and prediction.

    python -m benchmarks [out=outputs/bench] [overwrite=true] [quick=true] [skip_startup=true] [skip_data=true]
                         [cold_startup=true] [baseline_rev=REV] [epoch_rev=REV] [skip_steps=true]
                         [data_scale=0.05] [serve_scale=1.0] [scale=FRACTION]

Every ratio is measured side by side in one run, on the same inputs, with the same threads (torch, MKL, OpenMP and
numba at 2): each timing is the best of several repeats, so other work on the machine inflates numbers rather than
deflates them; the features' speed-ups over librosa are medians of ratios taken turn by turn (``side_by_side``).
Writes ``bench.md`` (the tables) and ``bench.json`` (the same numbers) under ``out``; ``bench.json`` after each
section, so an interrupted run keeps what it measured. A folder whose bench.md finser did not write is refused
unless ``overwrite=true``. ``quick=true`` is a smoke run (fewer files and repeats); ``cold_startup=true`` also times
train.py with an empty cache.

Sections (one module each, see ``benchmarks/__init__.py``): (1) exact features (``finser.features``) vs librosa per
file and per 2048-sample frame, plus the torch code of ``baseline_rev`` (the first, unoptimised version) for
before/after; (2) each FIN's parameters, FLOPs per frame and frames/s beside the study's; (3) training steps per
second (FIN frames/s, SER clips/s) and the FIN data loader's rate; (4) ``python train.py`` to its first training
step; (5) ``python -m benchmarks.data``'s table at ``data_scale`` and ``serve_scale`` (decode/augment throughput,
peak RSS serving the full-scale union); (6) ``python predict.py`` on a generated 60-minute file: its peak RSS; (7)
``compute_all`` and a FIN training step alone and beside two busy processes, with and without
``OMP_WAIT_POLICY=PASSIVE``; (8) each SER variant's training step in GFLOP/s beside a dense matrix product's (the
cores' practical peak), and a fine-tuned epoch paired with the same epoch at ``epoch_rev``; (9, only with
``scale=FRACTION``) the study-shaped corpus and each SER variant's epoch, extrapolated.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from benchmarks import BASELINE_REV, EPOCH_REV, REPO
from benchmarks.timing import THREADS, machine, set_threads
from finser.cli import Key, exit_code, parse_keys, usage
from finser.outputs import atomic_text, check_output_folder, first_line_is

TITLE = "# finser benchmark"
KEYS = {
    "out": Key(str(REPO / "outputs" / "bench")),
    "overwrite": Key("false", kind="bool"),
    "quick": Key("false", kind="bool"),
    "skip_startup": Key("false", kind="bool"),
    "skip_data": Key("false", kind="bool"),
    "cold_startup": Key("false", kind="bool"),
    "baseline_rev": Key(BASELINE_REV),
    "epoch_rev": Key(EPOCH_REV),
    "skip_steps": Key("false", kind="bool"),
    "data_scale": Key("0.05", kind="fraction"),
    "serve_scale": Key("1.0", kind="fraction"),
    "scale": Key("0", kind="fraction"),
}
USAGE = usage(__doc__.split("\n\n")[1])


def bench(arguments: list[str]) -> int:
    options = parse_keys(arguments, KEYS, USAGE)  # before any import: a usage error costs nothing
    set_threads()  # before the section modules load numpy and torch
    import torch

    from benchmarks import data, features, fins, predict, sharing, startup, steps, training
    from benchmarks.clips import clip_frames, speech_like_clips

    torch.set_num_threads(THREADS)
    out = check_output_folder(
        options["out"], "out", ["bench.md", "bench.json"], first_line_is(TITLE), options["overwrite"]
    )
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine()}
    n_files, repeats = (12, 3) if options["quick"] else (32, 5)
    clips = speech_like_clips(n_files)

    sections: list[tuple[str, str]] = []

    def section(title: str, key: str, run: Callable[[], dict], render: Callable[[dict], str]) -> None:
        start = time.perf_counter()
        print(f"[bench] {title} ...", file=sys.stderr, flush=True)
        results[key] = run()
        results[key + "_bench_s"] = round(time.perf_counter() - start, 1)
        sections.append((title, render(results[key])))
        (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))

    baseline = features.load_features_at(options["baseline_rev"])
    section(
        "1. Feature targets",
        "features",
        lambda: features.run(clips, repeats, 64 if options["quick"] else 256, baseline, options["baseline_rev"]),
        features.markdown,
    )
    frames = clip_frames(clips)
    section("2. FIN cost per frame", "fins", lambda: fins.run(frames, repeats), fins.markdown)
    section(
        "3. Training throughput", "training", lambda: training.run(frames, clips, options["quick"]), training.markdown
    )
    if not options["skip_startup"]:
        section("4. Start-up", "startup", lambda: startup.run(options["cold_startup"]), startup.markdown)
    if not options["skip_data"]:
        section(
            "5. Data pipeline and peak RSS",
            "data",
            lambda: data.run(options["data_scale"], options["serve_scale"], timeout=300),
            data.markdown,
        )
    else:
        sections.append(("5. Data pipeline and peak RSS", "Skipped (skip_data=true)."))
    section("6. Predicting a long file", "predict", predict.run, predict.markdown)
    section("7. Sharing the cores", "sharing", sharing.run, sharing.markdown)
    if not options["skip_steps"]:
        section(
            "8. SER steps against the cores' peak",
            "steps",
            lambda: steps.run(clips, options["quick"], options["epoch_rev"]),
            steps.markdown,
        )
    if options["scale"] > 0:  # opt-in: minutes even at a small fraction (benchmarks/scale.py)
        from benchmarks import scale

        section("9. The study's scale", "scale", lambda: scale.run(options["scale"], 4, timeout=1800), scale.markdown)

    info = results["machine"]
    head = [
        TITLE,
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, GPU: {info['gpu']}; torch "
        f"{info['torch']}, librosa {info['librosa']}, Python {info['python']}; {THREADS} threads everywhere. Load "
        f"average at start {tuple(round(x, 2) for x in info['load_average_at_start'])} (other work on the cores "
        "makes timings slower, never faster: each is the best of several repeats).",
    ]
    body = [f"\n## {title}\n\n{text}" for title, text in sections]
    with atomic_text(out / "bench.md") as handle:
        handle.write("\n".join(head + body) + "\n")
    print("\n".join(head + body))
    return 0


def main(arguments: list[str]) -> int:
    return exit_code(lambda: bench(arguments))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

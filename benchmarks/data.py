"""Section 5, the data pipeline: index, decode + resample, augment and serve the study's union of corpora.

    python -m benchmarks.data [scale=0.05] [serve_scale=1.0] [workers=N] [json=OUT.json]

(also ``python scripts/bench_data.py``). Generates the four corpora in their true layouts (full scale: 12,162 files,
one without audio) at ``scale`` in a temporary folder, then measures clips/s for each stage through the real code
(``finser.data.corpora.scan`` and ``finser.data.cache.DecodedCache``) with ``workers`` decoding processes (default:
one per core). Serving is measured at ``serve_scale`` of the full union × 3 versions (original, noise,
stretch→pitch; 36,483 entries of 55,125 samples = 8 GB at 1.0; 0 skips it) in a fresh process, so its peak RSS is
the serving cost alone. ``json`` also writes the dict to that file. Prints a Markdown table and a JSON dict;
``run_benchmark`` returns the dict. ``make bench`` runs this module in a process of its own (``run``), so the peak
RSS it reports is the pipeline's alone.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from benchmarks.timing import peak_rss_mb, section_process
from finser.cli import Key, exit_code, parse_keys, usage
from finser.cores import usable_cores
from finser.data import layouts
from finser.data.audio import STUDY_CROP
from finser.data.augment import VERSIONS, augmented_clips, render
from finser.data.cache import DecodedCache
from finser.data.corpora import STUDY_CORPORA, scan
from finser.report import markdown_table

FULL_CLIPS = 12_161
SPEEDUP_CLIPS = 48  # clips augmented by 1 and by N workers for the speed-up row
KEYS = {
    "scale": Key("0.05", kind="fraction"),
    "serve_scale": Key("1.0", kind="fraction"),
    "workers": Key(kind="count"),
    "json": Key(),
}
USAGE = usage(__doc__.split("\n\n")[1])


def timed(function, *arguments):
    start = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - start


def serve(folder: str, scale: float, frames_per_entry: int = 4) -> dict:
    """In a fresh process: write a store of ``scale`` × 36,483 cropped entries, then read every entry back whole
    (crc-checked, as a SER epoch does) plus a few frames each (as a FIN epoch does); report time and peak RSS."""
    n_entries = round(scale * FULL_CLIPS) * (1 + len(VERSIONS))
    cache = DecodedCache(folder, STUDY_CROP)
    rng = np.random.default_rng(0)
    block = (0.1 * rng.standard_normal((64, STUDY_CROP.n_samples))).astype(np.float32)
    start = time.perf_counter()
    chunk = 4096  # entries per shard write: 900 MB, bounded
    for first in range(0, n_entries, chunk):
        rows = [(f"bench/{k}", block[k % len(block)]) for k in range(first, min(first + chunk, n_entries))]
        cache._write_shard(rows)
    written = time.perf_counter() - start
    reopened = DecodedCache(folder, STUDY_CROP)
    start, total = time.perf_counter(), 0.0
    for entry in reopened.entries.values():
        whole = reopened.read_entry(entry)
        assert zlib.crc32(whole.tobytes()) == entry.crc
        total += float(whole[0])
        for frame in range(frames_per_entry):
            total += float(reopened.read_entry(entry, 512 * frame, 512 * frame + 2048)[0])
    served = time.perf_counter() - start
    return {
        "serve_entries": len(reopened.entries),
        "serve_gb": round(len(reopened.entries) * STUDY_CROP.n_samples * 4 / 1e9, 2),
        "serve_write_s": round(written, 1),
        "serve_entries_per_s": round(len(reopened.entries) / served, 1),
        "serve_peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_benchmark(scale: float = 0.05, serve_scale: float = 1.0, workers: int | None = None) -> dict:
    """Every stage at ``scale`` with ``workers`` processes (None: one per usable core); serving at ``serve_scale``
    (0 skips it)."""
    workers = workers or usable_cores()
    with tempfile.TemporaryDirectory(prefix="finser-bench-") as temporary:
        root = Path(temporary) / "ser"
        union = layouts.study_union(scale)
        files = [spec for specs in union.values() for spec in specs]
        _, generated = timed(layouts.write_files, root, files, 3.0)
        (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
        (root / "AudioWAV/1076_MTI_SAD_XX.wav").write_bytes(b"")  # CREMA-D's file with no audio
        index, indexed = timed(scan, root, STUDY_CORPORA)
        paths = [clip.path for clip in index.clips]
        cache = DecodedCache(Path(temporary) / "cache", STUDY_CROP, workers=workers)
        _, decoded = timed(cache.ensure, paths)
        augmented = [clip.path for clip in augmented_clips(index.clips)]
        _, augmenting = timed(cache.ensure, augmented)
        sample = augmented[: 2 * SPEEDUP_CLIPS]  # the same clips augmented into fresh stores by 1 and by N workers
        render(sample[-1], STUDY_CROP)  # librosa's numba JIT compiled here, before either is timed (forks inherit it)
        one, every = (
            timed(DecodedCache(Path(temporary) / f"speedup-{n}", STUDY_CROP, workers=n).ensure, sample)[1]
            for n in (1, workers)
        )
        results = {
            "scale": scale,
            "clips": len(index.clips),
            "skipped": len(index.skipped),
            "workers": workers,
            "generate_s": round(generated, 1),
            "index_clips_per_s": round(len(index.clips) / indexed, 1),
            "decode_resample_crop_clips_per_s": round(len(paths) / decoded, 1),
            "augment_clips_per_s": round(len(index.clips) / augmenting, 2),  # both versions of a clip
            "augment_1_worker_clips_per_s": round(len(sample) / 2 / one, 2),
            f"augment_speedup_{workers}_workers_vs_1": round(one / every, 2),  # goal: >= 1.7 on 2 cores
            "full_scale_decode_min_est": round(FULL_CLIPS / (len(paths) / decoded) / 60, 1),
            "full_scale_augment_min_est": round(FULL_CLIPS / (len(index.clips) / augmenting) / 60, 1),
            "build_peak_rss_mb": round(max(peak_rss_mb(), peak_rss_mb(resource.RUSAGE_CHILDREN)), 1),
        }
        if serve_scale > 0:
            context = multiprocessing.get_context("spawn")
            with context.Pool(1) as pool:
                results |= pool.apply(serve, (str(Path(temporary) / "serve"), serve_scale))
    return results


def run(scale: float, serve_scale: float, timeout: int) -> dict:
    """``python -m benchmarks.data`` in a process of its own (its peak RSS is the pipeline's alone): its dict, or
    ``{"error": ...}`` when it failed or ran past ``timeout`` seconds."""
    return section_process("benchmarks.data", [f"scale={scale}", f"serve_scale={serve_scale}"], timeout)


def table(results: dict) -> str:
    """The measures as a two-column Markdown table."""
    return markdown_table(["measure", "value"], [[name, value] for name, value in results.items()])


def markdown(result: dict) -> str:
    """The section's text: the table and whether the peak RSS meets the < 4 GB goal."""
    if "error" in result:
        return f"**Pending**: {result['error']}."
    peak = max(result.get("serve_peak_rss_mb", 0), result.get("build_peak_rss_mb", 0))
    verdict = "meets" if peak < 4096 else "misses"
    return "\n".join(
        [
            "From `python -m benchmarks.data` (generated union of the four corpora in their real layouts; decode, "
            "resample, crop and augment at `scale`, serve the union × 3 versions at `serve_scale`).\n",
            table(result),
            f"\nPeak RSS {peak:,.0f} MB: {verdict} the < 4 GB goal.",
        ]
    )


def data_command(arguments: list[str]) -> int:
    options = parse_keys(arguments, KEYS, USAGE)
    results = run_benchmark(options["scale"], options["serve_scale"], options["workers"])
    print(f"## Data pipeline (decode at scale {options['scale']}, serve at scale {options['serve_scale']})\n")
    print(table(results))
    print("\n" + json.dumps(results))
    if options["json"] is not None:
        Path(options["json"]).write_text(json.dumps(results, indent=2))
    return 0


def main(arguments: list[str]) -> int:
    return exit_code(lambda: data_command(arguments))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

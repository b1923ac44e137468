"""finser's benchmark, one module per section of ``outputs/bench/bench.md``.

    python -m benchmarks [out=outputs/bench] [quick=true] [skip_startup=true] [skip_data=true] [baseline_rev=REV]

(``make bench`` runs it through ``scripts/bench.py``.) Sections: ``features`` (1, exact features vs librosa),
``fins`` (2, FIN cost per frame), ``training`` (3, training steps and the FIN data loader), ``startup`` (4, ``python
train.py`` to its first step), ``data`` (5, the data pipeline and its peak RSS; also ``python -m benchmarks.data``
alone), ``predict`` (6, ``predict.py`` on an hour of audio), ``sharing`` (7, rates alone and beside busy processes),
``steps`` (8, SER steps in GFLOP/s against a matrix product's, and a fine-tuned epoch paired with an older
revision; ``epoch`` times one).
They share the generated clips (``clips``) and the timing harness (``timing``); each section module has a ``run``
that measures and returns a dict (written to ``bench.json``) and a ``markdown`` that renders it. Not part of the
installed package: run it from the repository root.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The revisions the before/after rows compare against (``baseline_rev=`` and ``epoch_rev=`` change them).
BASELINE_REV = "56aec3a"  # the foundation commit: the first, unoptimised torch features
EPOCH_REV = "bc276bc"  # the fine-tuned epoch's "before": the last revision before the faster FIN front-end

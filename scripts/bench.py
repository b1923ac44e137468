"""`make bench`: finser's benchmark, which lives in the ``benchmarks/`` package at the repository root.

    python scripts/bench.py [out=outputs/bench] [quick=true] [skip_startup=true] [skip_data=true] [baseline_rev=REV]

The same as ``python -m benchmarks ...`` run from the repository root (``help`` shows every key); it runs
there, so relative paths given to it are relative to the root. Writes ``outputs/bench/bench.md`` and ``bench.json``.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    # `python -m` puts its working directory first on sys.path: benchmarks/ imports without editing the path.
    sys.exit(subprocess.call([sys.executable, "-m", "benchmarks", *sys.argv[1:]], cwd=REPO))

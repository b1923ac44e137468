"""The data-pipeline benchmark alone (section 5 of `make bench`), which lives in ``benchmarks/data.py``.

    python scripts/bench_data.py [scale=0.05] [serve_scale=1.0] [workers=N] [json=OUT.json]

The same as ``python -m benchmarks.data ...`` run from the repository root (``help`` shows every key); it runs
there, so relative paths given to it are relative to the root.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    # `python -m` puts its working directory first on sys.path: benchmarks/ imports without editing the path.
    sys.exit(subprocess.call([sys.executable, "-m", "benchmarks.data", *sys.argv[1:]], cwd=REPO))

"""Train a FIN or an SER model: `python train.py [group=option ...] [key=value ...]` (see README)."""

import os
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (before torch loads its runtime): on cores shared with other jobs,
# spinning threads made compute_all ~40x slower at 2 threads; every process finser starts inherits this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The project root (this file's folder) for conf/paths and the run dirs, so a run started from another folder still
# uses the project's cache, FIN folder and outputs; inherited by launcher jobs. Set it to use another root.
os.environ.setdefault("FINSER_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from finser.launch import register_resolvers

register_resolvers()  # before Hydra composes: the launcher configs derive GPUs and tasks per node from trainer


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Imported here, after Hydra has composed the config: a wrong key or option fails in ~1 s, not after the
    # ~5 s of torch and Lightning imports.
    from finser.run import run

    metrics = run(cfg)
    return metrics.get(cfg.get("optimized_metric", ""))


if __name__ == "__main__":
    main()

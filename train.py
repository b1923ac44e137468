"""Train a FIN or an SER model: `python train.py [group=option ...] [key=value ...]` (see README)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from finser.console import reported_run
from finser.launch import prepare_entry_point

prepare_entry_point(Path(__file__).parent)  # before Hydra composes (resolvers, FINSER_ROOT) and torch loads


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Imported here, after Hydra has composed the config: a wrong key or option fails in ~1 s, not after the
    # ~5 s of torch and Lightning imports.
    from finser.run import run

    with reported_run():
        metrics = run(cfg)
    return metrics.get(cfg.get("optimized_metric", ""))


if __name__ == "__main__":
    main()

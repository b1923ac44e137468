"""Test a published checkpoint: `python eval.py ckpt=PATH [dataset=...] [eval_datasets=[...]] [group=option ...]`.

Writes results.json (test metrics on the dataset's test split and each evaluation corpus) in its run dir under
outputs/eval/; nothing is trained or published. For an SER model, name its preset: `experiment=ser_fin_finetuned`.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from finser.console import reported_run
from finser.launch import prepare_entry_point

prepare_entry_point(Path(__file__).parent)  # before Hydra composes (resolvers, FINSER_ROOT) and torch loads


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from finser.run import evaluate  # after composing: a wrong key fails before the torch and Lightning imports

    with reported_run():
        evaluate(cfg)


if __name__ == "__main__":
    main()

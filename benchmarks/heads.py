"""An SER head's config read from its file alone, as the benchmarks build heads outside a composed run."""

from __future__ import annotations

from typing import Any

from benchmarks import REPO


def head_config(head: str = "conv1d") -> Any:
    """``conf/ser_head/<head>.yaml``'s net with one output per canonical emotion: in a run ``n_classes`` follows
    ``dataset.emotions``, which the head's file alone lacks."""
    from omegaconf import OmegaConf

    from finser.data.labels import EMOTIONS

    config = OmegaConf.load(REPO / "conf" / "ser_head" / f"{head}.yaml").net
    config.n_classes = len(EMOTIONS)
    return config

"""Published checkpoints: a plain dict of tensors and strings, loaded with ``weights_only=True``.

A Lightning checkpoint can carry pickled objects; the files finser publishes for other runs and users hold only a
constructor description (restricted to ``finser.models``), a state dict and metadata, so loading one runs no
foreign code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from finser.errors import FinserError

FORMAT = "finser-checkpoint-1"


def save_checkpoint(model: nn.Module, model_config: dict[str, Any], path: str | Path, **meta: Any) -> Path:
    """Write atomically (temporary file + rename): a reader never sees half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "model": model_config, "state_dict": model.state_dict(), "meta": meta}
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a finser checkpoint, refusing anything else with a message that says what it is."""
    path = Path(path)
    if not path.is_file():
        raise FinserError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError for foreign files
        raise FinserError(f"{path} is not a finser checkpoint (it cannot be loaded safely: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FinserError(
            f"{path} is not a finser checkpoint: publish one with `python train.py ...` (a Lightning .ckpt from a "
            "run's checkpoints/ folder is for resuming with ckpt_path=..., not for loading)"
        )
    foreign = [target for target in constructors(payload["model"]) if not target.startswith("finser.models.")]
    if foreign or not str(payload["model"].get("_target_", "")):
        raise FinserError(f"{path} names a constructor outside finser.models ({foreign}); refusing to build it")
    return payload


def constructors(config: object) -> list[str]:
    """Every ``_target_`` in a model config, nested ones included (an SER model's front-end and head)."""
    if isinstance(config, dict):
        own = [str(config["_target_"])] if "_target_" in config else []
        return own + [target for value in config.values() for target in constructors(value)]
    if isinstance(config, list | tuple):
        return [target for value in config for target in constructors(value)]
    return []


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, and return it in eval mode with its metadata."""
    payload = read_checkpoint(path)
    model = instantiate(payload["model"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]


def load_fin(path: str | Path) -> nn.Module:
    """A published FIN as a plain module: frames (B, 2048) → its feature (B, dim) in the feature's own units."""
    model, meta = load_model(path)
    if meta.get("kind") != "fin":
        raise FinserError(f"{path} holds a {meta.get('kind')!r} model, not a FIN")
    return model

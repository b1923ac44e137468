"""Published checkpoints: a plain dict of tensors and strings, loaded with ``weights_only=True``.

A Lightning checkpoint can carry pickled objects; the files finser publishes for other runs and users hold only a
model description, a state dict and metadata. A file is data, never code: the description may only name one of
finser's own model constructors (:func:`model_constructors`, an explicit allow-list) with plain values as its
arguments, each checked against that constructor's signature before anything is built, and the model is built here,
not by ``hydra.utils.instantiate`` (which would honour ``_args_``, ``_partial_``, ``_call_`` and the like).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finser.data.locks import exclusive
from finser.errors import FinserError
from finser.models import fin, frontends, ser

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FORMAT = f"finser-checkpoint-{FORMAT_VERSION}"
FORMAT_PATTERN = re.compile(r"^finser-checkpoint-(\d+)$")
PLAIN_SCALARS = (bool, int, float, str, type(None))


def model_constructors() -> dict[str, Callable[..., nn.Module]]:
    """The only constructors a checkpoint may name, by the dotted names the configs use."""
    allowed = [
        fin.build_fin,
        fin.study_fin,  # the FIN files published before build_fin name these two
        fin.spectral_fin,
        ser.SERModel,
        ser.ExactFrontEnd,
        ser.FINFrontEnd,
        ser.LogMel,
        ser.Conv1dHead,
        ser.TemporalHead,
        frontends.SincNetFrontEnd,
        frontends.LeafFrontEnd,
        frontends.LogPower,
        frontends.PCEN,
    ]
    return {f"{constructor.__module__}.{constructor.__qualname__}": constructor for constructor in allowed}


def tensors_checksum(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: any changed byte changes it."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The tensors holding a NaN or an infinity: such a model computes NaN, so it is never published or loaded."""
    return [name for name, tensor in state_dict.items() if not bool(torch.isfinite(tensor).all())]


def save_checkpoint(model: nn.Module, model_config: dict[str, Any], path: str | Path, **meta: Any) -> Path:
    """Write atomically (temporary file + rename), readable by others as the umask allows (a shared FIN folder).

    The file records the checksum of its tensors (:func:`tensors_checksum`); weights that are not finite are refused.
    """
    path = Path(path)
    state_dict = model.state_dict()
    broken = non_finite(state_dict)
    if broken:
        raise FinserError(f"not writing {path}: the model's {', '.join(broken)} hold NaN or inf (training diverged)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "model": model_config, "state_dict": state_dict, "meta": meta,
               "checksum": tensors_checksum(state_dict)}  # fmt: skip
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp creates 0600: others could not load the file
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def previous_path(path: Path) -> Path:
    """Where a replaced published file is kept: ``mfcc_spectral.ckpt`` → ``mfcc_spectral.prev.ckpt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def improves(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> bool:
    """Whether a validation score (``{"monitor", "mode", "best"}``) beats another of the same monitor.

    Scores that cannot be compared (a missing one, another monitor) count as an improvement.
    """
    if not new or not old or new.get("monitor") != old.get("monitor") or old.get("best") is None:
        return True
    if new.get("best") is None:
        return False
    return new["best"] > old["best"] if new.get("mode") == "max" else new["best"] < old["best"]


def why_kept(new: Mapping[str, Any], old: Mapping[str, Any]) -> str | None:
    """Why a published file must not be replaced by a new run's model outside a sweep, or None.

    Scores are comparable only on the same data; a file published before finser recorded its data (or its score)
    can be replaced, as before.
    """
    if old.get("data") and new.get("data") and old["data"] != new["data"]:
        return "it was trained on other data (dataset or split settings differ)"
    new_score, old_score = new.get("validation") or {}, old.get("validation") or {}
    comparable = new_score and old_score and new_score.get("monitor") == old_score.get("monitor")
    if comparable and improves(old_score, new_score):
        return f"it scored better on validation ({old_score.get('best')}) than this run ({new_score.get('best')})"
    return None


def publish_checkpoint(
    model: nn.Module, model_config: dict[str, Any], path: str | Path, force: bool = False, **meta: Any
) -> Path | None:
    """Publish into a shared folder (``paths.fin_dir``), replacing an existing file only as an explicit, logged act.

    The file replaced is kept beside it (:func:`previous_path`) unless an earlier trial of the same sweep
    (``meta["sweep"]``) wrote it; within a sweep a trial replaces only a file of a worse validation score
    (``meta["validation"]``), so the sweep ends with its best trial published, whatever order trials finish in.
    Outside a sweep a run replaces a published file only when it was trained on the same data (``meta["data"]``)
    and is at least as good on validation (:func:`why_kept`): a smoke run never replaces the model the SER
    presets load. ``force`` replaces it anyway. Returns the path written, or None when the published file is
    kept (nothing written: the model belongs in its run dir).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.parent):  # trials of one sweep finishing at once take turns; no lock file is left behind
        if path.exists():
            try:
                old = read_checkpoint(path)["meta"]
            except FinserError as error:
                log.warning("the published %s cannot be read (%s): replacing it", path, error)
                old = {}
            same_sweep = meta.get("sweep") is not None and old.get("sweep") == meta.get("sweep")
            if same_sweep and not improves(meta.get("validation"), old.get("validation")):
                log.info(
                    "kept %s: %s of this sweep scored better on validation (%s) than this run (%s)",
                    path, old.get("run_dir"), old.get("validation"), meta.get("validation"),
                )  # fmt: skip
                return None
            reason = None if force or same_sweep else why_kept(meta, old)
            if reason:
                log.warning("kept the published %s (made by %s): %s; force_publish=true replaces it", path,
                            old.get("run_dir", "an unknown run"), reason)  # fmt: skip
                return None
            if not same_sweep:
                os.replace(path, previous_path(path))
            log.warning(
                "replacing the published %s (made by %s, validation %s) with this run's model (validation %s)%s",
                path, old.get("run_dir", "an unknown run"), old.get("validation"), meta.get("validation"),
                "" if same_sweep else f"; the previous file is kept as {previous_path(path)}",
            )  # fmt: skip
        return save_checkpoint(model, model_config, path, **meta)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a finser checkpoint, its model description checked; anything else refused, saying why."""
    path = Path(path)
    if not path.is_file():
        raise FinserError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError for foreign files
        raise FinserError(f"{path} is not a finser checkpoint (it cannot be loaded safely: {error})") from error
    made_by = FORMAT_PATTERN.match(str(payload.get("format", ""))) if isinstance(payload, dict) else None
    if made_by is None:
        raise FinserError(
            f"{path} is not a finser checkpoint: publish one with `python train.py ...` (a Lightning .ckpt from a "
            "run's checkpoints/ folder is for resuming with ckpt_path=..., not for loading)"
        )
    if int(made_by.group(1)) != FORMAT_VERSION:
        raise FinserError(
            f"{path} was made by finser checkpoint format {made_by.group(1)}; this finser reads {FORMAT_VERSION}: "
            "load it with the finser version that wrote it, or re-publish it with this one"
        )
    for key, kind in (("model", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(payload.get(key), kind):
            raise FinserError(f"{path} is damaged: its '{key}' entry is missing or not a {kind.__name__}")
    if not all(isinstance(value, torch.Tensor) for value in payload["state_dict"].values()):
        raise FinserError(f"{path} is damaged: its state dict holds something other than tensors")
    check_model_config(payload["model"], path)
    check_meta(payload["meta"], path)
    check_integrity(payload, path)
    return payload


def check_integrity(payload: dict[str, Any], path: str | Path) -> None:
    """Refuse a file whose tensors differ from the checksum it was published with, or hold NaN or inf.

    Files published before checksums existed load with a warning (their weights are still checked finite).
    """
    recorded = payload.get("checksum")
    if recorded is None:
        log.warning("%s records no checksum (published by an older finser): its weights cannot be verified", path)
    elif recorded != tensors_checksum(payload["state_dict"]):
        raise FinserError(
            f"{path} is damaged: its weights do not match the checksum it was published with (the file was changed "
            "or corrupted after publishing): publish it again, or restore it from its .prev.ckpt copy"
        )
    broken = non_finite(payload["state_dict"])
    if broken:
        raise FinserError(f"{path} is damaged: its {', '.join(broken)} hold NaN or inf: publish it again")


def check_meta(meta: dict[str, Any], path: str | Path) -> None:
    """The metadata a loader relies on: the kind of model, and for an SER model the order of its emotions."""
    if not isinstance(meta.get("kind"), str):
        raise FinserError(f"{path} is damaged: its metadata names no kind of model (fin or ser)")
    emotions = meta.get("emotions")
    if meta["kind"] == "ser" and not (
        isinstance(emotions, list | tuple) and emotions and all(isinstance(e, str) for e in emotions)
    ):
        raise FinserError(f"{path} is damaged: an SER model without its emotions (their order names the outputs)")


def check_model_config(config: Any, path: str | Path, where: str = "model") -> None:
    """Refuse, naming the file and the entry, a description that is not finser's own constructors and plain values.

    Checked whole before anything is built, so a refused file has built (and run) nothing.
    """
    if not isinstance(config, dict) or not isinstance(config.get("_target_"), str):
        raise FinserError(f"{path}: {where} must be a mapping with a '_target_' naming a finser model")
    allowed = model_constructors()
    target = config["_target_"]
    if target not in allowed:
        raise FinserError(
            f"{path}: {where}._target_ {target!r} is not one of finser's model constructors "
            f"({', '.join(sorted(allowed))}); refusing to build it"
        )
    parameters = inspect.signature(allowed[target]).parameters
    takes_any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in config.items():
        if key == "_target_":
            continue
        entry = f"{where}.{key}"
        if isinstance(value, dict) and "_target_" in value:
            check_model_config(value, path, entry)
        else:
            check_plain(value, path, entry)
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise FinserError(f"{path}: {entry} is not a constructor argument (special keys are refused)")
        if key not in parameters and not takes_any_keyword:
            raise FinserError(f"{path}: {entry} is not an argument of {target} ({', '.join(parameters)})")


def check_plain(value: Any, path: str | Path, where: str) -> None:
    """Numbers, strings, booleans, None, and lists or string-keyed mappings of those; nothing else."""
    if isinstance(value, PLAIN_SCALARS):
        return
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            check_plain(item, path, f"{where}[{position}]")
        return
    if isinstance(value, dict):
        if "_target_" in value:
            target = value["_target_"]
            raise FinserError(f"{path}: {where} names a constructor ({target!r}) where a plain value belongs")
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("_"):
                raise FinserError(f"{path}: {where} has key {key!r}: special keys are refused")
            check_plain(item, path, f"{where}.{key}")
        return
    raise FinserError(f"{path}: {where} is a {type(value).__name__}, not a plain number, string, list or mapping")


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Call the checked constructors, innermost first (an SER model's front-end and head)."""
    constructor = model_constructors()[config["_target_"]]
    arguments = {
        key: build_model(value) if isinstance(value, dict) and "_target_" in value else value
        for key, value in config.items()
        if key != "_target_"
    }
    return constructor(**arguments)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, and return it in eval mode with its metadata."""
    payload = read_checkpoint(path)
    try:
        model = build_model(payload["model"])
    except FinserError as error:
        raise FinserError(f"{path}: {error}") from error
    except (TypeError, ValueError, RuntimeError) as error:
        raise FinserError(f"{path}: its model description cannot be built: {error}") from error
    try:
        model.load_state_dict(payload["state_dict"])
    except FinserError as error:  # a FIN that names what differs (e.g. the stride it was trained with)
        raise FinserError(f"{path}: {error}") from error
    except RuntimeError as error:  # missing or unexpected keys, other shapes
        raise FinserError(f"{path}: its weights do not fit the model it describes ({error})") from error
    return model.eval(), payload["meta"]


def load_fin(path: str | Path) -> nn.Module:
    """A published FIN as a plain module: frames (B, 2048) → its feature (B, dim) in the feature's own units."""
    model, meta = load_model(path)
    if meta.get("kind") != "fin":
        raise FinserError(f"{path} holds a {meta.get('kind')!r} model, not a FIN (its metadata says so)")
    return model

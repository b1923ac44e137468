"""Shared fixtures: tiny generated corpora and a helper that runs train.py through Hydra in a subprocess.

Also marks every test that starts a process (``train.py``, ``predict.py``, a script) slow, found by what its code,
its helpers and its fixtures call: ``make test-fast`` leaves them out, with the few marked ``@pytest.mark.slow`` by
hand for taking more than a few seconds in-process.
"""

from __future__ import annotations

import dis
import importlib.util
import inspect
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, ModuleType

import numpy as np
import pytest

from tests.preloaded import PRELOADED_PYTHON, REPO, run_python

HELPERS = ("tests", "benchmarks")  # packages whose functions the tests call as helpers


def pytest_configure(config: pytest.Config) -> None:
    """The resolvers ``train.py`` registers before Hydra composes, for the tests that compose the config too."""
    from finser.launch import register_resolvers

    register_resolvers()


def pytest_unconfigure(config: pytest.Config) -> None:
    PRELOADED_PYTHON.close()


def global_names(code: CodeType) -> set[str]:
    """The global names a code object and the functions nested in it load (not attributes: ``x.predict`` is not
    ``predict``)."""
    names = {op.argval for op in dis.get_instructions(code) if op.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            names |= global_names(constant)
    return names


def starts_processes(function: object, seen: set[object]) -> bool:
    """Whether ``function``, or a helper of the tests' or the benchmark's that it calls, uses ``subprocess``."""
    function = inspect.unwrap(function)
    if not inspect.isfunction(function) or function.__module__.split(".")[0] not in HELPERS or function in seen:
        return False
    seen.add(function)
    names = global_names(function.__code__)
    return "subprocess" in names or any(
        starts_processes(function.__globals__.get(name), seen) for name in names if name in function.__globals__
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        seen: set[object] = set()
        fixtures = [definitions[-1].func for definitions in item._fixtureinfo.name2fixturedefs.values()]
        if any(starts_processes(function, seen) for function in [item.obj, *fixtures]):
            item.add_marker(pytest.mark.slow)


def speech_like_frames(seed: int, n_clips: int = 4) -> np.ndarray:
    """Frames (B, 2048) of synthetic speech from a seed no corpus in the tests trains on."""
    from finser.data.labels import EMOTIONS
    from finser.data.synthetic import SyntheticCorpusSpec, clip_audio

    spec = SyntheticCorpusSpec(seed=seed)
    clips = [clip_audio(spec, index, EMOTIONS[index % len(EMOTIONS)], 0) for index in range(n_clips)]
    return np.concatenate([np.lib.stride_tricks.sliding_window_view(clip, 2048)[::512] for clip in clips])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so each tiny corpus is generated once."""
    return tmp_path_factory.mktemp("cache")


TINY = [
    "dataset.index.n_speakers=3",
    "dataset.index.clips_per_emotion=1",
    "eval_datasets.synthetic_unseen.n_speakers=3",
    "eval_datasets.synthetic_unseen.clips_per_emotion=1",
    "training.max_epochs=1",
    "training.limit_train_batches=4",
    "training.batch_size=64",
]


def run_train(
    tmp_path: Path,
    cache_dir: Path,
    *overrides: str,
    check: bool = True,
    wandb_mode: str | None = "offline",
    script: str = "train.py",
    full_error: bool = True,
) -> subprocess.CompletedProcess:
    """Run `python train.py` (or ``script``, e.g. eval.py) as a user would, with outputs under ``tmp_path``, no network
    and no terminal to ask questions on (``wandb_mode=None`` leaves W&B to finser's own default)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1"}
    if not full_error:  # as a user runs it: Hydra's short error report
        env.pop("HYDRA_FULL_ERROR")
    env.pop("WANDB_MODE", None)
    if wandb_mode is not None:
        env["WANDB_MODE"] = wandb_mode
    flags = [override for override in overrides if override.startswith("-")]  # e.g. -m: before the overrides
    command = [
        sys.executable,
        str(REPO / script),
        *flags,
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        f"paths.cache_dir={cache_dir}",
        f"paths.fin_dir={tmp_path / 'fins'}",
        *TINY,
        *[override for override in overrides if override not in flags],
    ]
    result = run_python(command, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


MFCC_CONFIG = {"_target_": "finser.models.fin.spectral_fin", "feature": "mfcc"}


def published_before(fin_dir: Path) -> bytes:
    """A good FIN already published in ``fin_dir``, as another run would have left it; returns its bytes."""
    from finser.models.checkpoint import save_checkpoint
    from finser.models.fin import spectral_fin

    path = save_checkpoint(spectral_fin("mfcc"), MFCC_CONFIG, fin_dir / "mfcc_spectral.ckpt", kind="fin",
                           feature="mfcc", arch="spectral", run_dir="the good run")  # fmt: skip
    return path.read_bytes()


PRETRAINED_R2 = 0.987  # the test R² the tiny FINs' metadata claims from pre-training


def publish_tiny_fins(fin_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Five spectral FINs, nudged off their closed-form init so "pretrained" weights are recognisable."""
    import torch

    from finser.features import FEATURES
    from finser.models.checkpoint import save_checkpoint
    from finser.models.fin import spectral_fin

    generator = torch.Generator().manual_seed(seed)
    paths = {}
    for feature in FEATURES:
        fin = spectral_fin(feature)
        with torch.no_grad():
            for parameter in fin.parameters():
                parameter.add_(1e-3 * torch.randn(parameter.shape, generator=generator))
        paths[feature] = save_checkpoint(
            fin,
            {"_target_": "finser.models.fin.spectral_fin", "feature": feature},
            fin_dir / f"{feature}_spectral.ckpt",
            kind="fin",
            feature=feature,
            arch="spectral",
            metrics={"test/r2": PRETRAINED_R2},
        )
    return paths


@pytest.fixture(scope="session")
def fin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny FINs, published once for the session (tests copy them, never change them)."""
    folder = tmp_path_factory.mktemp("fins")
    publish_tiny_fins(folder)
    return folder


def wandb_records(path: Path) -> Iterator[object]:
    """Records of an offline ``run-*.wandb`` file: a LevelDB-style log (32 KiB blocks of chunks) of protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B", path
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@dataclass
class OfflineRun:
    """What an offline W&B run recorded: its group, job type, tags, summary keys, and artifacts as
    (name, type, file) it logged and it used."""

    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    summary: set[str] = field(default_factory=set)
    logged: set[tuple[str, str, str]] = field(default_factory=set)
    used: set[tuple[str, str, str]] = field(default_factory=set)


def wandb_run(run_dir: Path) -> OfflineRun:
    """The one offline W&B run inside a run dir."""
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    run = OfflineRun()
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.group, run.job_type, run.tags = record.run.run_group, record.run.job_type, list(record.run.tags)
        elif kind == "summary":
            run.summary |= {item.key or "/".join(item.nested_key) for item in record.summary.update}
        elif kind == "artifact":
            artifact = record.artifact
            (entry,) = artifact.manifest.contents
            (run.used if artifact.use_after_commit else run.logged).add((artifact.name, artifact.type, entry.path))
    return run


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is no package), for tests that call its ``main``."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

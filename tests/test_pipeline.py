"""What the run layer does before a task is built: find the published FINs, pre-train missing ones, load them."""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from finser.errors import FinserError
from finser.features import FEATURES
from finser.models.checkpoint import load_model
from finser.models.ser import Conv1dHead, FINFrontEnd, SERModel
from finser.pipeline import FrontEndWeights
from finser.tasks.ser import SERTask

ADAM = functools.partial(torch.optim.Adam)


def test_a_missing_fin_stops_with_the_command_that_makes_it(tmp_path: Path, fin_dir: Path) -> None:
    for feature in ("zcr", "rms"):
        (tmp_path / f"{feature}_spectral.ckpt").write_bytes((fin_dir / f"{feature}_spectral.ckpt").read_bytes())
    command = rf"python train\.py feature=chroma fin_arch=spectral paths\.fin_dir={re.escape(str(tmp_path))}\n"
    with pytest.raises(FinserError, match=command):  # runs as printed, from any directory
        FrontEndWeights("pretrained", tmp_path).apply(FINFrontEnd("spectral"))


def test_an_unknown_init_is_refused_naming_the_choices() -> None:
    with pytest.raises(FinserError, match=r"fin\.init='pretrain': expected one of pretrained, random"):
        FrontEndWeights("pretrain")


def test_pretrain_missing_runs_the_pretraining_command_for_each_missing_fin(tmp_path: Path, fin_dir: Path) -> None:
    for feature in ("zcr", "rms", "chroma"):
        (tmp_path / f"{feature}_spectral.ckpt").write_bytes((fin_dir / f"{feature}_spectral.ckpt").read_bytes())
    # A stand-in for train.py: publishes the FIN its overrides name, as the real one would.
    script = tmp_path / "fake_train.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "assert args['fin_arch'] == 'spectral' and args['logger'] == 'none' and args['extra'] == 'yes'\n"
        f"source = Path({str(fin_dir)!r}) / f\"{{args['feature']}}_spectral.ckpt\"\n"
        "(Path(args['paths.fin_dir']) / source.name).write_bytes(source.read_bytes())\n"
    )
    net = SERModel(FINFrontEnd("spectral"), Conv1dHead())
    weights = FrontEndWeights(
        "pretrained", tmp_path, pretrain_missing=True, train_script=script, pretrain_overrides=["extra=yes"]
    )
    loaded = weights.apply(net.front_end)
    task = SERTask(net, ADAM, 1e-3, front_end_trainable=False, **loaded.task_arguments())
    assert {path.name for path in tmp_path.glob("*.ckpt")} == {f"{feature}_spectral.ckpt" for feature in FEATURES}
    published, _ = load_model(fin_dir / "mfcc_spectral.ckpt")
    assert torch.equal(task.net.front_end.fins["mfcc"].dct.weight, published.dct.weight)
    assert loaded.checkpoints == {feature: tmp_path / f"{feature}_spectral.ckpt" for feature in FEATURES}
    assert not hasattr(task, "fin_checkpoints")  # the task gets only what it uses (the lineage is the run's)


def test_missing_fins_are_pretrained_once_by_concurrent_jobs_each_as_a_lone_process(
    tmp_path: Path, fin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """Two DDP ranks of a submitit job (or two parallel jobs) find the same FINs missing: one pre-trains them while
    the other waits, then loads them. The pre-training child gets none of the launcher's rank variables: as rank 1
    of a two-task job it would wait for a second rank that never starts."""
    present = ("zcr", "rms", "chroma")
    for feature in present:
        (tmp_path / f"{feature}_spectral.ckpt").write_bytes((fin_dir / f"{feature}_spectral.ckpt").read_bytes())
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_NTASKS", "2")
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "1")
    monkeypatch.setenv("RANK", "1")
    script = tmp_path / "fake_train.py"
    script.write_text(
        "import os, sys, time\nfrom pathlib import Path\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "assert not {'RANK', 'SUBMITIT_LOCAL_NTASKS', 'SUBMITIT_LOCAL_GLOBALID'} & set(os.environ), 'a rank'\n"
        f"with open({str(tmp_path / 'runs.txt')!r}, 'a') as runs:\n    runs.write(args['feature'] + '\\n')\n"
        "time.sleep(0.5)\n"
        f"source = Path({str(fin_dir)!r}) / f\"{{args['feature']}}_spectral.ckpt\"\n"
        "(Path(args['paths.fin_dir']) / source.name).write_bytes(source.read_bytes())\n"
    )
    weights = FrontEndWeights("pretrained", tmp_path, pretrain_missing=True, train_script=script)
    with ThreadPoolExecutor(2) as jobs:
        loaded = list(jobs.map(lambda _: weights.apply(FINFrontEnd("spectral")), range(2)))
    runs = (tmp_path / "runs.txt").read_text().split()
    assert sorted(runs) == sorted(set(FEATURES) - set(present))  # each missing FIN once, not once per job
    assert all(set(each.checkpoints) == set(FEATURES) for each in loaded)

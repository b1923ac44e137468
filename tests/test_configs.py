"""Every option of every config group composes, resolves and builds, without training a step.

A renamed class, a typo in an interpolation or an argument a constructor no longer takes fails here, in seconds,
instead of minutes into a run. Real corpora (their roots do not exist here) and GPU trainers are composed and
checked, not built.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from finser.data.audio import STUDY_CROP, AudioSpec
from finser.data.corpora import corpus_emotions
from finser.data.labels import EMOTIONS, Clip
from finser.features import FEATURE_DIMS, FEATURES, REGISTERED_FEATURES
from finser.models.checkpoint import model_constructors
from finser.models.fin import FIN_ARCHITECTURES
from finser.run import check_settings, data_signature
from finser.tasks.stopping import ConvergenceStop
from tests.conftest import REPO

CONF = REPO / "conf"
OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF.iterdir())
    if group.is_dir() and group.name != "hydra"  # hydra/launcher options: tests/test_launchers.py
    for option in sorted(group.glob("*.yaml"))
]
SER_PRESETS = ["ser_baseline", "ser_fin_frozen", "ser_fin_finetuned", "ser_fin_scratch"]
CONTROL_PRESETS = ["ser_fin_closed_form", "ser_sincnet", "ser_leaf"]  # the controls beside the FINs
WITH = {  # options made for another's setting (front_end: an SER preset's defaults add the group)
    ("hparams_search", "ser_optuna"): ["experiment=ser_fin_finetuned"],
    ("task", "ser"): ["experiment=ser_fin_finetuned"],
    ("front_end", "exact"): ["experiment=ser_fin_frozen"],
    ("front_end", "fin"): ["experiment=ser_baseline"],
    ("front_end", "sincnet"): ["experiment=ser_baseline"],
    ("front_end", "leaf"): ["experiment=ser_baseline"],
}


@pytest.fixture
def compose_train(tmp_path: Path) -> Iterator:
    """``compose("train", overrides)`` as ``train.py`` would see it: the Hydra config set, so ``${hydra:...}``
    resolves, and the run dir in ``tmp_path``."""

    def composed(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield composed
    HydraConfig.instance().cfg = None


def override(group: str, option: str) -> str:
    return f"{group}=[{option}]" if group == "eval_datasets" else f"{group}={option}"


def targets(node: object) -> Iterator[str]:
    """Every ``_target_`` in a resolved config tree."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from targets(value)


def test_the_groups_are_the_documented_ones() -> None:
    assert {group for group, _ in OPTIONS} == {
        "callbacks", "clip", "datamodule", "dataset", "debug", "eval_datasets", "experiment", "feature", "fin_arch",
        "front_end", "hparams_search", "logger", "paths", "ser_head", "split", "task", "trainer", "training",
    }  # fmt: skip
    assert ("ser_head", "temporal") in OPTIONS and ("trainer", "gpu") in OPTIONS and ("dataset", "esd") in OPTIONS


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{group}={option}" for group, option in OPTIONS])
def test_every_option_composes_resolves_and_names_importable_targets(compose_train, group: str, option: str) -> None:
    cfg = compose_train(override(group, option), *WITH.get((group, option), []))
    if group == "eval_datasets":
        assert list(cfg.eval_datasets) == [option]
    else:
        assert cfg.hydra.runtime.choices[group] == option
    if (group, option) == ("experiment", "ser_common"):  # shared by the SER presets, which set these two
        assert OmegaConf.is_missing(cfg, "front_end") and OmegaConf.is_missing(cfg, "variant")
        return
    resolved = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)
    for target in targets(resolved):
        assert callable(get_object(target)), f"{group}={option}: _target_ {target} is not callable"
    check_settings(cfg)


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
@pytest.mark.parametrize("arch", ["spectral", "fc", "conv"])
def test_every_fin_builds_from_its_config(compose_train, feature: str, arch: str) -> None:
    cfg = compose_train(f"feature={feature}", f"fin_arch={arch}")
    net = instantiate(cfg.task.net)
    with torch.no_grad():
        assert net(torch.randn(2, 2048)).shape == (2, FEATURE_DIMS[feature])


@pytest.mark.parametrize("head", ["conv1d", "temporal"])
@pytest.mark.parametrize("experiment", SER_PRESETS + CONTROL_PRESETS)
def test_every_ser_preset_builds_with_every_head(compose_train, experiment: str, head: str) -> None:
    cfg = compose_train(f"experiment={experiment}", f"ser_head={head}")
    assert cfg.identity.head == head and cfg.task.net.head._target_ == cfg.ser_head.net._target_
    net = instantiate(cfg.task.net)
    with torch.no_grad():
        assert net(torch.randn(2, 22_050)).shape == (2, len(EMOTIONS))


@pytest.mark.parametrize("dataset", [option for group, option in OPTIONS if group == "dataset"])
def test_the_head_has_one_output_per_emotion_the_dataset_declares(compose_train, dataset: str) -> None:
    cfg = compose_train("experiment=ser_baseline", f"dataset={dataset}")
    names = cfg.dataset.index.names if "names" in cfg.dataset.index else ["synthetic"]
    assert list(cfg.dataset.emotions) == list(corpus_emotions(names)) == list(cfg.task.emotions)
    assert list(cfg.datamodule.emotions) == list(cfg.dataset.emotions)
    assert cfg.ser_head.net.n_classes == len(cfg.dataset.emotions)
    if dataset in ("synthetic", "synthetic_study", "combined"):
        assert tuple(cfg.dataset.emotions) == EMOTIONS  # the union and the embedded corpus keep the eight
    net = instantiate(cfg.task.net)
    with torch.no_grad():
        assert net(torch.randn(2, 22_050)).shape == (2, len(cfg.dataset.emotions))


def test_iemocap_defaults_to_its_leave_one_session_out_folds(compose_train) -> None:
    cfg = compose_train("experiment=ser_baseline", "dataset=iemocap")
    assert list(cfg.dataset.emotions) == ["neutral", "happy", "sad", "angry"]
    assert cfg.split._target_ == "finser.data.splits.speaker_folds" and cfg.split.folds is None
    assert [list(fold) for fold in cfg.split.fixed.iemocap] == [[f"Session{n}"] for n in range(1, 6)]
    assert compose_train("experiment=ser_baseline", "dataset=iemocap", "split=speaker").split._target_.endswith(
        "speaker_split"
    )


@pytest.mark.parametrize("experiment", ["fin", *SER_PRESETS])
def test_every_callback_builds(compose_train, experiment: str) -> None:
    cfg = compose_train(f"experiment={experiment}")
    callbacks = {name: instantiate(node) for name, node in cfg.callbacks.items()}
    assert all(isinstance(callback, L.Callback) for callback in callbacks.values()), callbacks
    assert callbacks["model_checkpoint"].monitor == cfg.callbacks.model_checkpoint.monitor


def options_of(group: str) -> list[str]:
    return [option for name, option in OPTIONS if name == group]


MODEL_SETTINGS = [
    *[("experiment=fin", f"fin_arch={arch}") for arch in options_of("fin_arch")],
    *[
        (f"experiment={experiment}", f"ser_head={head}", f"front_end={front_end}")
        for experiment in options_of("experiment")
        if experiment.startswith("ser_") and experiment != "ser_common"
        for head in options_of("ser_head")
        for front_end in options_of("front_end")
    ],
]


@pytest.mark.parametrize("overrides", MODEL_SETTINGS, ids=[" ".join(setting) for setting in MODEL_SETTINGS])
def test_every_model_a_config_can_build_is_on_the_checkpoint_allow_list(compose_train, overrides: tuple) -> None:
    """A published model loads back only through ``model_constructors``: a new head, front-end or FIN whose
    ``_target_`` is missing from that list would train, publish, and then be refused by predict.py and eval.py."""
    net = OmegaConf.to_container(compose_train(*overrides).task.net, resolve=True)
    missing = set(targets(net)) - set(model_constructors())
    assert not missing, f"{' '.join(overrides)}: add {sorted(missing)} to finser.models.checkpoint.model_constructors"


@pytest.mark.parametrize("option", ["csv", "none", "wandb"])
def test_every_logger_builds(compose_train, monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")  # a W&B logger that writes no file
    cfg = compose_train(f"logger={option}")
    loggers = [instantiate(node) for node in (cfg.logger or {}).values()]
    assert all(isinstance(logger, Logger) for logger in loggers)
    assert len(loggers) == {"csv": 1, "none": 0, "wandb": 2}[option]


def test_the_cpu_trainer_builds_and_the_gpu_ones_ask_for_gpus(compose_train) -> None:
    trainer = instantiate(compose_train("trainer=cpu").trainer, logger=False, enable_checkpointing=False)
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 5
    gpu = compose_train("trainer=gpu").trainer  # no GPU here: composed, not built
    assert (gpu.accelerator, gpu.devices, gpu.get("strategy")) == ("gpu", 1, None)
    ddp = compose_train("trainer=ddp").trainer
    assert (ddp.accelerator, ddp.devices, ddp.strategy, ddp.sync_batchnorm) == ("gpu", "auto", "ddp", True)
    assert ddp.max_epochs == gpu.max_epochs == trainer.max_epochs  # both extend the cpu trainer


@pytest.mark.parametrize("option", ["speaker", "random", "leaky"])
def test_every_split_builds_and_assigns_every_clip(compose_train, option: str) -> None:
    split = instantiate(compose_train(f"split={option}").dataset.split)
    clips = [Clip(f"{s}_{emotion}_{i}.wav", "c", f"{s:02d}", emotion)
             for s in range(10) for emotion in EMOTIONS for i in range(3)]  # fmt: skip
    if option == "leaky":
        with pytest.warns(UserWarning, match="inflated"):
            assigned = split(clips)
    else:
        assigned = split(clips)
    assert {clip.split for clip in assigned} == {"train", "val", "test"}


def test_the_optimiser_and_schedule_build(compose_train) -> None:
    training = compose_train().training
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(training.optimizer)(parameters, lr=training.lr)
    scheduler = instantiate(training.scheduler)(optimizer)
    assert isinstance(optimizer, torch.optim.Adam) and scheduler.factor == pytest.approx(0.4)
    assert optimizer.defaults["fused"], "Adam's fused kernel: one pass over the weights (docs/performance.md)"


def test_the_fused_adam_steps_an_ser_model_as_torchs_per_tensor_adam(compose_train) -> None:
    """The fused kernel is only faster: the same fine-tuned SER model (spectral FINs, conv1d head) stepped 5 times
    with the configured Adam and with torch's per-tensor loop ends with the same weights. An Adam step moves a
    weight by at most lr = 1e-3, and 5e-5 is 1 % of the most five steps can move it (float32 reordering, magnified
    where a gradient is near Adam's epsilon; measured 1e-5); the logits agree to 1e-4."""
    from finser.models.ser import Conv1dHead, FINFrontEnd, SERModel

    optimizer = instantiate(compose_train("experiment=ser_fin_finetuned").task.optimizer)
    generator = torch.Generator().manual_seed(0)
    waveforms, labels = torch.randn(4, 8192, generator=generator), torch.arange(4)
    weights, logits = [], []
    for factory in (optimizer, functools.partial(optimizer, foreach=False, fused=False)):
        torch.manual_seed(0)
        model = SERModel(FINFrontEnd("spectral"), Conv1dHead()).eval()  # eval: no dropout draws to pair
        step = factory(model.parameter_groups(1e-3), lr=1e-3)
        initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        for _ in range(5):
            step.zero_grad()
            torch.nn.functional.cross_entropy(model(waveforms), labels).backward()
            step.step()
        weights.append({name: tensor.detach().clone() for name, tensor in model.state_dict().items()})
        logits.append(model(waveforms).detach())
    fused, looped = weights
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-4)
    moved = max((looped[name] - start).abs().max() for name, start in initial.items())
    assert moved > 1e-4  # the weights did move: the steps are compared, not the initialisation
    for name, tensor in looped.items():
        assert (fused[name] - tensor).abs().max() <= 5e-5, name


@pytest.mark.parametrize("preset", ["ser_baseline", "ser_fin_frozen", "ser_fin_finetuned", "ser_fin_scratch"])
def test_the_ser_presets_train_at_a_constant_rate_with_kerass_adam(compose_train, preset: str) -> None:
    """The study's SER head: Adam (Keras's epsilon), no schedule; FIN pre-training keeps reduce-on-plateau."""
    task = compose_train(f"experiment={preset}").task
    optimizer = instantiate(task.optimizer)([torch.nn.Parameter(torch.zeros(2))], lr=task.lr)
    assert task.scheduler is None and optimizer.defaults["eps"] == pytest.approx(1e-7)
    assert compose_train().task.scheduler is not None


@pytest.mark.parametrize("preset", ["fin", *SER_PRESETS])
def test_every_preset_trains_until_its_checkpoint_monitor_stops_improving(compose_train, preset: str) -> None:
    """Training length follows validation: Lightning's EarlyStopping on the checkpoint's own monitor, with the
    values the preset states; ``training.max_epochs`` is only a cap above what the rule needs."""
    cfg = compose_train(f"experiment={preset}")
    stopping = instantiate(cfg.callbacks.early_stopping)
    assert isinstance(stopping, EarlyStopping) and isinstance(stopping, ConvergenceStop)
    monitor = "val/r2" if preset == "fin" else "val/f1_macro"
    assert stopping.monitor == cfg.callbacks.model_checkpoint.monitor == monitor
    assert stopping.mode == "max" and stopping.patience >= 2 and stopping.min_delta >= 0
    assert cfg.training.max_epochs > stopping.patience
    if preset != "fin":  # the SER head needs ~50 epochs on the embedded corpus (docs/ser.md)
        assert (stopping.patience, stopping.min_steps, cfg.training.max_epochs) == (15, 300, 150)


def test_the_evaluation_corpus_follows_the_datasets_size(compose_train) -> None:
    """A smoke run's tiny corpus gets a tiny evaluation corpus: testing costs what the run is worth."""
    default = compose_train().eval_datasets.synthetic_unseen
    tiny = compose_train("dataset.index.n_speakers=3", "dataset.index.clips_per_emotion=1").eval_datasets
    assert (default.n_speakers, default.clips_per_emotion) == (4, 2)
    assert (tiny.synthetic_unseen.n_speakers, tiny.synthetic_unseen.clips_per_emotion) == (1, 1)


@pytest.mark.parametrize("option", ["ravdess", "crema_d", "tess", "savee", "esd", "combined"])
def test_real_corpora_read_their_root_from_the_data_dir(compose_train, option: str) -> None:
    cfg = compose_train(f"dataset={option}", "paths.data_dir=/data/ser")  # composed only: the root does not exist
    index = cfg.dataset.index
    names = ["ravdess", "crema_d", "tess", "savee"] if option == "combined" else [option]
    assert (index.root, list(index.names)) == ("/data/ser", names)
    assert isinstance(index.names, ListConfig) and cfg.dataset.audio.duration == 2.5


FULL_LENGTH = AudioSpec()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("dataset=synthetic",), FULL_LENGTH),  # the embedded corpus's FINs: each clip whole
        (("dataset=synthetic_study",), FULL_LENGTH),
        (("dataset=ravdess",), STUDY_CROP),
        (("dataset=combined", "dataset.band_limit_hz=8000"), replace(STUDY_CROP, band_limit_hz=8000)),
        (("experiment=ser_baseline",), STUDY_CROP),  # every SER preset, every corpus: the study's crop
        (("experiment=ser_fin_finetuned", "dataset=synthetic_study"), STUDY_CROP),
        (("experiment=ser_fin_frozen", "dataset=esd"), STUDY_CROP),
        (("experiment=ser_baseline", "clip=full"), FULL_LENGTH),
        (("clip=study",), STUDY_CROP),
    ],
)
def test_every_run_cuts_its_clips_as_it_did(compose_train, overrides: tuple, expected: AudioSpec) -> None:
    """The presets' clips, from the one clip spec (the clip group at dataset.audio): the same as before it was one."""
    cfg = compose_train(*overrides)
    assert instantiate(cfg.datamodule.audio) == expected
    assert instantiate(cfg.dataset.audio) == expected


@pytest.mark.parametrize("experiment", ["fin", "ser_baseline", "ser_fin_finetuned"])
def test_one_clip_spec_cuts_fin_and_ser_clips_alike(compose_train, experiment: str) -> None:
    """``dataset.audio.*`` is read by both datamodules: an SER run ignored it (and then refused it) before."""
    overrides = (f"experiment={experiment}", "dataset.audio.offset=0.3", "dataset.audio.duration=1.5",
                 "dataset.band_limit_hz=4000")  # fmt: skip
    cfg = compose_train(*overrides)
    assert instantiate(cfg.datamodule.audio) == AudioSpec(offset=0.3, duration=1.5, band_limit_hz=4000)
    check_settings(cfg, overrides)


def test_the_study_crop_in_python_is_the_clip_group_s(compose_train) -> None:
    """``finser.data.audio.STUDY_CROP`` (tests, benchmarks, library use) names what conf/clip/study.yaml holds."""
    assert instantiate(compose_train("clip=study").dataset.audio) == STUDY_CROP


@pytest.mark.parametrize(
    ("experiment", "front_end", "net"),
    [
        ("ser_baseline", "exact", {"_target_": "finser.models.ser.ExactFrontEnd", "features": list(FEATURES)}),
        (
            "ser_fin_frozen",
            "fin",
            {"_target_": "finser.models.ser.FINFrontEnd", "arch": "spectral", "features": list(FEATURES)},
        ),
    ],
)
def test_the_front_end_group_names_the_run_and_publishes_plain_data(
    compose_train, experiment: str, front_end: str, net: dict
) -> None:
    cfg = compose_train(f"experiment={experiment}")
    arch = net.get("arch", "exact")
    assert (cfg.identity.front_end, cfg.identity.arch) == (front_end, arch)
    assert {f"front_end={front_end}", f"arch={arch}"} <= set(cfg.tags)
    assert OmegaConf.to_container(cfg.task.net.front_end, resolve=True) == net  # what a published SER file holds
    switched = compose_train(f"experiment={experiment}", f"front_end={'fin' if front_end == 'exact' else 'exact'}")
    assert switched.identity.front_end != front_end


def test_the_feature_and_fin_arch_options_are_the_package_s_registries() -> None:
    """The groups are the command line's menu of one list each (finser.features.REGISTERED_FEATURES,
    FIN_ARCHITECTURES): an option is a file named after its entry, holding that name."""
    for group, registry in (("feature", REGISTERED_FEATURES), ("fin_arch", FIN_ARCHITECTURES)):
        options = {option for name, option in OPTIONS if name == group}
        assert options == set(registry), group
        for option in options:
            assert OmegaConf.load(CONF / group / f"{option}.yaml").name == option, (group, option)


@pytest.mark.parametrize("option", ["speaker_folds", "emobox_folds"])
def test_speaker_fold_options_build_and_every_variant_trains_on_the_same_fraction(compose_train, option: str) -> None:
    corpus = "savee" if option == "emobox_folds" else "c"
    speakers = ["DC", "JE", "JK", "KL"] if option == "emobox_folds" else [f"{s:02d}" for s in range(8)]
    clips = [Clip(f"{speaker}_{emotion}_{i}.wav", corpus, speaker, emotion)
             for speaker in speakers for emotion in EMOTIONS for i in range(5)]  # fmt: skip
    training, identities = [], []
    for preset in ("ser_baseline", "ser_fin_finetuned", "ser_fin_scratch"):
        cfg = compose_train(f"experiment={preset}", f"split={option}", "split.fold=1", "datamodule.train_fraction=0.4")
        settings = {key: cfg.datamodule[key] for key in ("batch_size", "seed", "train_fraction")}
        module = get_object(cfg.datamodule._target_)(clips, instantiate(cfg.dataset.split), **settings)
        assert {clip.split for clip in module.clips} == {"train", "val", "test"}
        training.append({clip.path for clip in module.clips if clip.split == "train"})
        identities.append(OmegaConf.to_container(cfg.identity, resolve=True))
    assert training[0] and all(subset == training[0] for subset in training)
    assert all((identity["fold"], identity["train_fraction"]) == (1, 0.4) for identity in identities)


def test_the_data_a_fin_was_trained_on_is_told_apart(compose_train) -> None:
    """What decides whether two published FINs' validation scores compare (publish_checkpoint's why_kept)."""
    default = data_signature(compose_train())
    assert data_signature(compose_train("feature=rms", "fin_arch=conv")) == default  # the same data for every FIN
    smoke = compose_train("dataset.index.n_speakers=3", "dataset.index.clips_per_emotion=1")
    assert data_signature(smoke) != default
    assert data_signature(compose_train("split=random")) != default
    # The label set is not the data: FINs published before datasets declared their emotions still compare.
    assert data_signature(compose_train("++dataset.emotions=[neutral,sad]")) == default


@pytest.mark.parametrize(("dataset", "pretrains"), [("synthetic", True), ("synthetic_study", True), ("ravdess", False),
                                                    ("combined", False)])  # fmt: skip
def test_ser_presets_pretrain_missing_fins_by_default_only_on_a_generated_corpus(
    compose_train, dataset: str, pretrains: bool
) -> None:
    """A newcomer's `python train.py experiment=ser_fin_finetuned` after `make train` pre-trains the four FINs it
    misses; on a downloaded corpus (hours of pre-training) it stops and prints the commands instead."""
    for preset in ("ser_fin_frozen", "ser_fin_finetuned"):
        assert compose_train(f"experiment={preset}", f"dataset={dataset}").fin.pretrain_missing is pretrains


@pytest.mark.parametrize("preset", ["ser_baseline", "ser_fin_finetuned"])
@pytest.mark.parametrize(
    ("features", "size"),
    [("[zcr,rms,chroma,mfcc]", 34), ("[melspec,zcr]", 129), ("[rms]", 1), ("[zcr,rms,chroma,mfcc,melspec]", 162),
     ("[zcr,rms,chroma,mfcc,melspec,spectral_centroid]", 163), ("[spectral_centroid,mfcc]", 21)],
)  # fmt: skip
def test_any_subset_of_the_features_feeds_the_head(compose_train, preset: str, features: str, size: int) -> None:
    """``front_end.features`` picks the front-end's features and their order, any registered one among them; the
    head's input size, the run's identity (``feature``: ``all`` or the set) and its W&B tags follow; the five are
    the study's 162 values."""
    cfg = compose_train(f"experiment={preset}", f"front_end.features={features}")
    chosen = features.strip("[]").split(",")
    assert cfg.front_end.n_features == cfg.ser_head.net.n_features == size
    name = "all" if size == 162 else "+".join(chosen)
    assert cfg.identity.feature == name and f"features={name}" in cfg.tags
    net = instantiate(cfg.task.net)
    assert net.front_end.features == tuple(chosen)
    values, mask = net.frame_features(torch.randn(2, 8192))
    assert values.shape == (2, size, mask.shape[1]) and net(torch.randn(2, 8192)).shape == (2, 8)


@pytest.mark.parametrize("preset", [*SER_PRESETS, "ser_fin_closed_form"])  # SincNet and LEAF learn their own
def test_the_ser_presets_still_take_the_study_s_five_features(compose_train, preset: str) -> None:
    """A registered feature beyond the five is there to be asked for: no preset's front-end, size or name moves."""
    cfg = compose_train(f"experiment={preset}")
    assert FEATURES == ("zcr", "rms", "chroma", "mfcc", "melspec")
    assert tuple(cfg.front_end.features) == FEATURES and cfg.identity.feature == "all"
    assert cfg.front_end.n_features == cfg.ser_head.net.n_features == 162


@pytest.mark.parametrize(
    ("features", "message"),
    [("[zcr,pitch]", "unknown feature 'pitch'"), ("[zcr,zcr]", "zcr repeated"), ("[]", "none given")],
)
def test_a_bad_feature_subset_is_refused_naming_it(compose_train, features: str, message: str) -> None:
    cfg = compose_train("experiment=ser_fin_finetuned", f"front_end.features={features}")
    with pytest.raises(Exception, match=message):
        OmegaConf.to_container(cfg.front_end, resolve=True)


@pytest.mark.parametrize("experiment", ["fin", "ser_fin_finetuned"])
def test_the_fin_architecture_is_one_key_read_where_it_is_used(compose_train, experiment: str) -> None:
    """``fin_arch=conv`` reaches the network, the identity (results.json's ``arch``) and the W&B group and tag; the
    relay key ``fin.arch`` that stood between them is gone, so nothing can set the architecture a second way."""
    cfg = compose_train(f"experiment={experiment}", "fin_arch=conv")
    net = cfg.task.net.front_end if experiment != "fin" else cfg.task.net
    assert net.arch == cfg.identity.arch == "conv" and "arch=conv" in cfg.tags and cfg.group.endswith("-conv")
    with pytest.raises(ConfigCompositionException, match=r"fin\.arch"):
        compose_train(f"experiment={experiment}", "fin.arch=conv")

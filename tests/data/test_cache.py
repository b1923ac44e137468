"""Nothing damaged is trained on: cache entries and indexes are verified, rebuilt from the source audio or skipped."""

from __future__ import annotations

import errno
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from finser.data.audio import AudioSpec
from finser.data.augment import render
from finser.data.cache import DecodedCache
from finser.data.corpora import cached_scan
from finser.data.frames import FrameDataModule, FrameSet
from finser.data.labels import Clip
from finser.data.utterances import UtteranceDataModule
from finser.errors import FinserError

from .conftest import tone, write_tree, write_wav

SPEC = AudioSpec()  # full length at 22,050 Hz: the cache holds each clip as it was written
SPLITS = ["train", "train", "train", "val", "test"]
KINDS = ["ser", "fin_ram", "fin_disk"]  # the SER cache path, FIN sets read into RAM, FIN sets served from disk


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    """Half-second tones at 22,050 Hz, one frequency each."""
    return [
        Clip(str(write_wav(tmp_path / "audio" / f"c{k}.wav", tone(0.5, 22_050, 200.0 + 100 * k), 22_050)), "c",
             f"s{k}", "neutral", split)
        for k, split in enumerate(SPLITS)
    ]  # fmt: skip


def data_module(kind: str, clips: list[Clip], cache_root: Path) -> UtteranceDataModule | FrameDataModule:
    """A set-up data module reading ``clips`` (split: ``list``, as they carry their split) through the decoded cache
    under ``cache_root``."""
    if kind == "ser":
        module = UtteranceDataModule(clips, list, audio=SPEC, cache_dir=str(cache_root))
    else:
        ram_budget_mb = 1024 if kind == "fin_ram" else 0
        module = FrameDataModule(clips, list, audio=SPEC, cache_dir=str(cache_root), ram_budget_mb=ram_budget_mb)
    module.setup()
    return module


def served_train_audio_is_true(module: UtteranceDataModule | FrameDataModule, paths: list[str]) -> bool:
    """The training set serves exactly the audio rendered from ``paths``' source files."""
    train = module.sets["train"]
    if isinstance(module, UtteranceDataModule):
        served = [clip.path for clip in train.clips]
        return served == paths and all(
            np.array_equal(train.waveform(k).numpy(), render(path, SPEC)) for k, path in enumerate(paths)
        )
    expected = FrameSet([render(path, SPEC) for path in paths])
    frames = list(range(len(expected)))
    return len(train) == len(expected) and torch.equal(train.__getitems__(frames), expected.__getitems__(frames))


def change_entry(cache_root: Path, path: str, change: Callable[[np.ndarray], None], update_crc: bool = False) -> None:
    """Change the stored samples of ``path``'s entry in place (and, if asked, the crc32 its index holds)."""
    cache = DecodedCache(cache_root, SPEC)
    key = cache.key(path)
    entry = cache.entries[key]
    data = np.load(cache.folder / entry.shard, mmap_mode="r+")
    samples = data[entry.offset : entry.offset + entry.length]
    change(samples)
    data.flush()
    if update_crc:
        index = (cache.folder / entry.shard).with_suffix(".json")
        meta = json.loads(index.read_text())
        meta["entries"] = [[k, start, length, zlib.crc32(samples.tobytes()) if k == key else crc]
                           for k, start, length, crc in meta["entries"]]  # fmt: skip
        index.write_text(json.dumps(meta))


def with_noise(samples: np.ndarray) -> None:
    samples[:] = np.random.default_rng(0).uniform(-1, 1, samples.size)


def with_nan(samples: np.ndarray) -> None:
    samples[100] = np.nan


@pytest.mark.parametrize("kind", KINDS)
def test_an_entry_overwritten_with_noise_is_rebuilt_from_its_source_file(
    kind: str, clips: list[Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_module(kind, clips, tmp_path / "cache")
    change_entry(tmp_path / "cache", clips[1].path, with_noise)
    caplog.clear()
    module = data_module(kind, clips, tmp_path / "cache")
    assert served_train_audio_is_true(module, [clip.path for clip in clips[:3]])
    assert f"{clips[1].path} (original version" in caplog.text and "crc32 mismatch" in caplog.text
    caplog.clear()
    data_module(kind, clips, tmp_path / "cache")
    assert "damaged" not in caplog.text  # the rebuilt entry is the one read from then on


@pytest.mark.parametrize("kind", KINDS)
def test_nan_stored_with_a_matching_crc_is_rebuilt(
    kind: str, clips: list[Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_module(kind, clips, tmp_path / "cache")
    change_entry(tmp_path / "cache", clips[0].path, with_nan, update_crc=True)
    caplog.clear()
    module = data_module(kind, clips, tmp_path / "cache")
    assert served_train_audio_is_true(module, [clip.path for clip in clips[:3]])
    assert f"{clips[0].path} (original version" in caplog.text and "NaN or inf" in caplog.text


def test_an_augmented_entry_is_named_by_its_source_file_and_version(
    clips: list[Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    noisy = f"{clips[0].path}#aug=noise"
    cache = DecodedCache(tmp_path / "cache", SPEC)
    assert cache.ensure([noisy]) == {}
    change_entry(tmp_path / "cache", noisy, with_noise)
    assert np.array_equal(DecodedCache(tmp_path / "cache", SPEC).signal(noisy), render(noisy, SPEC))
    assert f"{clips[0].path} (noise version" in caplog.text


@pytest.mark.parametrize("loss", ["unreadable", "deleted"])
@pytest.mark.parametrize("kind", ["ser", "fin_disk"])
def test_a_damaged_entry_whose_source_is_lost_is_skipped_and_named(
    kind: str, loss: str, clips: list[Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_module(kind, clips, tmp_path / "cache")
    change_entry(tmp_path / "cache", clips[1].path, with_noise)
    source = Path(clips[1].path)
    if loss == "deleted":
        source.unlink()
    else:  # same size and modification time (the same cache key), but no longer audio
        stat = source.stat()
        source.write_bytes(b"\0" * stat.st_size)
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    caplog.clear()
    module = data_module(kind, clips, tmp_path / "cache")
    assert served_train_audio_is_true(module, [clips[0].path, clips[2].path])
    assert f"skipped {source}" in caplog.text


def test_a_set_left_without_usable_clips_stops_the_run_naming_the_files(clips: list[Clip], tmp_path: Path) -> None:
    data_module("ser", clips, tmp_path / "cache")
    val = Path(clips[3].path)
    change_entry(tmp_path / "cache", str(val), with_noise)
    stat = val.stat()
    val.write_bytes(b"\0" * stat.st_size)
    os.utime(val, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(FinserError, match=rf"no usable clip among the 1 of this set: {val}: not readable"):
        data_module("ser", clips, tmp_path / "cache")


def test_a_truncated_shard_index_is_treated_as_missing_and_rebuilt(
    clips: list[Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_module("fin_disk", clips, tmp_path / "cache")
    indexes = sorted((tmp_path / "cache").glob("audio-*/shard-*.json"))  # one per set
    for index in indexes:
        index.write_text(index.read_text()[:40])
    caplog.clear()
    module = data_module("fin_disk", clips, tmp_path / "cache")
    assert served_train_audio_is_true(module, [clip.path for clip in clips[:3]])
    for index in indexes:
        assert f"{index} is damaged" in caplog.text
        assert not index.exists() and not index.with_suffix(".npy").exists()  # removed: no later run warns again


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next_build(clips: list[Clip], tmp_path: Path) -> None:
    cache = DecodedCache(tmp_path / "cache", SPEC)
    cache.ensure([clips[0].path])
    stale = [cache.folder / ".shard-killed.npy.tmp", cache.folder / ".shard-killed.json.tmp"]
    for temporary in stale:
        temporary.write_bytes(b"\0" * 4096)
    assert cache.ensure([clips[0].path]) == {} and all(temporary.exists() for temporary in stale)  # nothing built
    assert cache.ensure([clips[1].path]) == {}
    assert not list(cache.folder.glob(".*.tmp"))


def test_a_full_disk_is_an_error_naming_the_file_and_the_bytes_needed(
    clips: list[Clip], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    cache = DecodedCache(tmp_path / "cache", SPEC)
    needed = 128 + 4 * 2 * 11_025  # the .npy header, then two clips of float32 samples
    with pytest.raises(FinserError, match=rf"out of disk space: {cache.folder}/\.shard-\w+\.npy\.tmp needs {needed:,} "
                                          r"bytes, [\d,]+ are free"):  # fmt: skip
        cache.ensure([clips[0].path, clips[1].path])
    assert not list(cache.folder.glob(".*.tmp")) and not list(cache.folder.glob("shard-*"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_tree(tmp_path, "savee")


def test_a_truncated_corpus_index_is_scanned_again(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = cached_scan(corpus, ["savee"], tmp_path / "cache")
    (index,) = (tmp_path / "cache" / "index").glob("savee-*.json")
    index.write_text(index.read_text()[:40])
    assert cached_scan(corpus, ["savee"], tmp_path / "cache") == first
    assert f"{index} is damaged" in caplog.text
    assert cached_scan(corpus, ["savee"], tmp_path / "cache") == first and json.loads(index.read_text())


def test_a_stale_corpus_index_temporary_is_removed(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "index"
    folder.mkdir(parents=True)
    stale = folder / "savee-0123456789abcdef.5f3e9a.tmp"  # a scan killed while writing its index
    stale.write_text('{"clips": [')
    cached_scan(corpus, ["savee"], tmp_path / "cache")
    assert not stale.exists() and len(list(folder.glob("savee-*.json"))) == 1

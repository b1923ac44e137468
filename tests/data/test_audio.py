"""Audio conversion, the study's crop, the band limit, augmentation and the decoded cache."""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soxr

from finser.data.audio import (
    SAMPLE_RATE,
    STUDY_CROP,
    AudioSpec,
    band_limit,
    crop,
    load_audio,
    read_blocks,
    recorded_clip,
)
from finser.data.augment import augmented_versions, render
from finser.data.cache import DecodedCache
from finser.data.frames import load_clips
from finser.data.labels import Clip
from finser.errors import FinserError

from .conftest import tone, write_wav


@pytest.mark.parametrize(
    ("rate", "subtype", "channels"),
    [(48_000, "PCM_16", 2), (11_025, "PCM_U8", 1), (44_100, "FLOAT", 1), (24_414, "PCM_24", 1), (16_000, "PCM_16", 1)],
)
def test_any_format_becomes_mono_float32_at_22050(tmp_path: Path, rate: int, subtype: str, channels: int) -> None:
    samples = tone(0.5, rate, 1000.0)
    path = write_wav(
        tmp_path / "a.wav", np.stack([samples] * channels, axis=1) if channels > 1 else samples, rate, subtype
    )
    signal = load_audio(path)
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert abs(signal.size - 0.5 * SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(signal))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / signal.size - 1000.0) < 3  # still a 1 kHz tone


def test_blocks_join_to_one_resampling_of_the_whole_file(tmp_path: Path) -> None:
    samples = 0.1 * np.random.default_rng(0).standard_normal((48_000 * 3, 2)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", samples, 48_000, "FLOAT")
    whole = soxr.resample(samples.mean(axis=1), 48_000, SAMPLE_RATE, quality="HQ")
    blocks = list(read_blocks(path, block_frames=10_000))
    assert len(blocks) > 10 and max(block.size for block in blocks) < 10_000
    np.testing.assert_array_equal(np.concatenate(blocks), whole)  # exactly: soxr keeps its state between blocks


def test_study_crop_is_exactly_55125_samples_from_0_6_s() -> None:
    ramp = np.arange(4 * SAMPLE_RATE, dtype=np.float32)
    cropped = crop(ramp, STUDY_CROP)
    assert cropped.size == 55_125 and cropped[0] == round(0.6 * SAMPLE_RATE)
    short = crop(np.ones(SAMPLE_RATE, np.float32), STUDY_CROP)  # 1 s: 0.4 s left after the offset, then zeros
    assert (
        short.size == 55_125 and short[: round(0.4 * SAMPLE_RATE)].all() and not short[round(0.4 * SAMPLE_RATE) :].any()
    )
    assert crop(ramp, AudioSpec()).size == ramp.size  # full length


def test_a_clip_that_ends_before_the_offset_is_cut_from_its_start_as_predict_scores_it() -> None:
    """Seen: a 0.5 s file under the study's crop (from 0.6 s) became 2.5 s of zeros with its emotion label; predict
    scores such a file from its start (``inference.from_offset``), and so does training now."""
    half_second = np.arange(1, SAMPLE_RATE // 2 + 1, dtype=np.float32)
    cropped = crop(half_second, STUDY_CROP)
    assert cropped.size == 55_125
    np.testing.assert_array_equal(cropped[: half_second.size], half_second)
    assert not cropped[half_second.size :].any()
    np.testing.assert_array_equal(crop(half_second, AudioSpec(offset=0.6)), half_second)  # no duration: whole


def test_band_limit_removes_above_cutoff_and_keeps_below() -> None:
    def energy(signal: np.ndarray) -> float:
        return float(np.mean(signal[2000:-2000] ** 2))

    high, low = tone(1.0, SAMPLE_RATE, 10_000.0), tone(1.0, SAMPLE_RATE, 1_000.0)
    assert energy(band_limit(high, 8000)) < 1e-4 * energy(high)
    assert energy(band_limit(low, 8000)) == pytest.approx(energy(low), rel=0.01)
    assert band_limit(high, 8000).size == high.size and band_limit(high, None) is high


@pytest.mark.slow
def test_augmented_versions_are_the_study_s_noise_and_stretch_pitch() -> None:
    signal = tone(1.0, SAMPLE_RATE, 220.0)
    noise, stretched = augmented_versions(signal, seed=3)
    assert noise.shape == stretched.shape == signal.shape and noise.dtype == np.float32
    assert 0 < np.abs(noise - signal).max() < 0.035 * np.abs(signal).max() * 6  # amplitude ≤ 0.035·max|x|, gaussian
    assert np.array_equal(noise, augmented_versions(signal, seed=3)[0])
    assert not np.array_equal(noise, augmented_versions(signal, seed=4)[0])
    pitch = np.argmax(np.abs(np.fft.rfft(stretched[: SAMPLE_RATE // 2]))) * 2  # Hz at 0.5 s of FFT
    assert pitch == pytest.approx(220 * 2 ** (0.7 / 12), abs=4)  # +0.7 semitone


def test_render_tagged_paths_and_band_limit_last(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", tone(3.5, 48_000, 300.0), 48_000)
    spec = AudioSpec(offset=0.6, duration=2.5, band_limit_hz=4000)
    original, noisy = render(str(path), spec), render(f"{path}#aug=noise", spec)
    assert original.size == noisy.size == 55_125
    spectrum = np.abs(np.fft.rfft(noisy - original))
    frequencies = np.fft.rfftfreq(noisy.size, 1 / SAMPLE_RATE)
    assert spectrum[frequencies > 4500].max() < 0.01 * spectrum[frequencies < 3500].max()  # noise band-limited too


def clip_files(folder: Path, n: int = 3) -> list[str]:
    return [str(write_wav(folder / f"c{k}.wav", tone(1.0 + 0.1 * k, 16_000, 200.0 + 50 * k), 16_000)) for k in range(n)]


def test_cache_decodes_once_and_serves_the_same_samples(tmp_path: Path) -> None:
    paths = clip_files(tmp_path / "audio")
    paths += [f"{paths[0]}#aug=noise", f"{paths[0]}#aug=stretch_pitch"]
    cache = DecodedCache(tmp_path / "cache", STUDY_CROP)
    assert cache.ensure(paths) == {}
    shards = sorted((cache.folder).glob("shard-*.npy"))
    assert len(shards) == 1
    for path in paths:
        assert np.array_equal(cache.signal(path), render(path, STUDY_CROP))
    reopened = DecodedCache(tmp_path / "cache", STUDY_CROP)
    assert reopened.ensure(paths) == {} and sorted(cache.folder.glob("shard-*.npy")) == shards  # nothing rebuilt
    assert np.array_equal(reopened.read(paths[1], 100, 2148), render(paths[1], STUDY_CROP)[100:2148])
    assert np.load(shards[0], mmap_mode="r").size == 5 * 55_125  # a plain .npy, memory-mappable


def test_changed_spec_builds_another_store(tmp_path: Path) -> None:
    a = DecodedCache(tmp_path, STUDY_CROP)
    b = DecodedCache(tmp_path, AudioSpec(offset=0.6, duration=2.5, band_limit_hz=8000))
    assert a.folder != b.folder and json.loads((b.folder / "spec.json").read_text())["spec"]["band_limit_hz"] == 8000


def test_damaged_entry_and_truncated_shard_are_rebuilt(tmp_path: Path) -> None:
    paths = clip_files(tmp_path / "audio")
    cache = DecodedCache(tmp_path / "cache", STUDY_CROP)
    cache.ensure(paths)
    (shard,) = cache.folder.glob("shard-*.npy")
    with shard.open("r+b") as handle:  # flip bytes inside the second entry
        handle.seek(-55_125 * 4 - 1000, 2)
        handle.write(b"\x7f" * 64)
    expected = render(paths[1], STUDY_CROP)
    assert np.array_equal(DecodedCache(tmp_path / "cache", STUDY_CROP).signal(paths[1]), expected)
    assert np.array_equal(DecodedCache(tmp_path / "cache", STUDY_CROP).signal(paths[1]), expected)  # the new entry wins
    with shard.open("r+b") as handle:
        handle.truncate(1000)
    cache = DecodedCache(tmp_path / "cache", STUDY_CROP)
    assert paths[0] not in {p for p in paths if cache.key(p) in cache.entries}  # damaged shard ignored
    assert cache.ensure(paths) == {} and np.array_equal(cache.signal(paths[0]), render(paths[0], STUDY_CROP))


def _build(arguments: tuple[str, list[str]]) -> int:
    root, paths = arguments
    return len(DecodedCache(root, STUDY_CROP).ensure(paths))


def test_two_processes_building_at_once_are_safe(tmp_path: Path) -> None:
    paths = clip_files(tmp_path / "audio", n=4)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_build, [(str(tmp_path / "cache"), paths)] * 2) == [0, 0]
    cache = DecodedCache(tmp_path / "cache", STUDY_CROP)
    assert not list(cache.folder.glob(".*tmp")) and cache.verify() == []
    assert all(np.array_equal(cache.signal(p), render(p, STUDY_CROP)) for p in paths)
    stored = [row[0] for index in cache.folder.glob("shard-*.json") for row in json.loads(index.read_text())["entries"]]
    assert sorted(stored) == sorted(cache.key(p) for p in paths)  # each clip decoded once: no duplicate entries


def test_load_clips_keeps_its_signature_and_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = clip_files(tmp_path, n=1)[0]
    (tmp_path / "bad.wav").write_bytes(b"")
    clips = [Clip(good, "c", "s", "happy"), Clip(str(tmp_path / "bad.wav"), "c", "s", "sad")]
    loaded = load_clips(clips)
    assert [clip for clip, _ in loaded] == clips[:1] and loaded[0][1].size == SAMPLE_RATE
    cropped = load_clips(clips, audio=STUDY_CROP)
    assert [clip for clip, _ in cropped] == clips[:1] and cropped[0][1].size == 55_125
    assert "empty file" in caplog.text


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"clip": asdict(AudioSpec(offset=0.3, duration=1.5, band_limit_hz=8000))},
         AudioSpec(offset=0.3, duration=1.5, band_limit_hz=8000)),
        ({"sample_rate": SAMPLE_RATE, "offset": 0.6, "clip_samples": 55_125}, STUDY_CROP),  # published before
        ({"sample_rate": SAMPLE_RATE, "offset": 0.6, "clip_samples": 55_125, "band_limit_hz": 8000},
         AudioSpec(offset=0.6, duration=2.5, band_limit_hz=8000)),
        ({"sample_rate": SAMPLE_RATE, "offset": 0.6, "clip_samples": None}, AudioSpec(offset=0.6)),  # full length
        ({}, AudioSpec()),  # no record at all: each file one clip from its start
    ],
)  # fmt: skip
def test_a_published_clip_record_reads_as_the_spec_it_was_trained_with(meta: dict, expected: AudioSpec) -> None:
    assert recorded_clip(meta) == expected
    assert recorded_clip(meta).n_samples == expected.n_samples


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"clip": {"offset": 0.6}}, "expected the keys"),
        ({"clip": {**asdict(STUDY_CROP), "sample_rate": 16_000}}, "finser models take 22,050 Hz"),
        ({"clip": {**asdict(STUDY_CROP), "offset": -1.0}}, "offset: expected a number >= 0"),
        ({"clip": {**asdict(STUDY_CROP), "duration": "2.5"}}, "duration: expected a number"),
        ({"clip": {**asdict(STUDY_CROP), "duration": 0.01}}, "duration: expected a number >= 0.0929"),
        ({"clip": {**asdict(STUDY_CROP), "band_limit_hz": float("nan")}}, "band_limit_hz: expected a number"),
        ({"clip_samples": "many"}, "duration: expected a number"),
        ({"clip": [0.6, 2.5]}, "expected the keys"),
    ],
)
def test_a_clip_record_finser_never_writes_is_refused_naming_the_file(meta: dict, problem: str) -> None:
    with pytest.raises(FinserError, match=rf"model\.ckpt: its clip record .*{problem}"):
        recorded_clip(meta, "model.ckpt")

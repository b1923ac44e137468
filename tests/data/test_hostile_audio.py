"""Hostile audio files: none may crash the process; each is decoded or refused with its reason, the same way by
the indexer, the cache builder and predict (one header rule, finser.data.audio.check_header)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from finser.data import cache as cache_module
from finser.data.audio import MAX_CHANNELS, MAX_RATE, MIN_RATE, SAMPLE_RATE, AudioSpec, load_audio
from finser.data.cache import DecodedCache
from finser.data.corpora import skip_kind, validate

# name → (frames, rate, channels, subtype): the files of the tree that killed a training run
HOSTILE = {
    "one_hz": (144_000, 1, 1, "PCM_16"),
    "one_hz_short": (100, 1, 1, "PCM_16"),
    "six_channels": (22_050, 22_050, 6, "PCM_16"),
    "eight_bit": (22_050, 22_050, 1, "PCM_U8"),
    "twenty_four_bit": (22_050, 22_050, 1, "PCM_24"),
    "float64": (22_050, 22_050, 1, "DOUBLE"),
    "ten_minutes": (600 * 8_000, 8_000, 1, "PCM_16"),
    "above_max_rate": (384_000, 384_000, 1, "PCM_16"),
}
REFUSED = {"one_hz", "one_hz_short", "above_max_rate"}


def write_hostile(folder: Path, name: str) -> Path:
    frames, rate, channels, subtype = HOSTILE[name]
    noise = 0.1 * np.random.default_rng(0).standard_normal((frames, channels))
    path = folder / f"{name}.wav"
    soundfile.write(path, noise, rate, subtype=subtype)
    return path


PROBE = """
import sys
from finser.data.audio import AudioError, load_audio
try:
    print("decoded", load_audio(sys.argv[1]).size)
except AudioError as error:
    print("refused", error)
"""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_load_audio_never_crashes(tmp_path: Path, name: str) -> None:
    """In a subprocess, so a segfault fails this test instead of killing pytest (the 1 Hz header segfaulted)."""
    path = write_hostile(tmp_path, name)
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name}: exit {result.returncode}: {result.stderr[-500:]}"
    verdict, _, detail = result.stdout.strip().partition(" ")
    assert verdict == ("refused" if name in REFUSED else "decoded"), result.stdout
    if name in REFUSED:
        assert str(path) in detail and "Hz" in detail
    else:
        frames, rate, *_ = HOSTILE[name]
        assert abs(int(detail) - frames * SAMPLE_RATE / rate) <= 2


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_indexer_refuses_the_same_headers(tmp_path: Path, name: str) -> None:
    path = write_hostile(tmp_path, name)
    reason = validate(path)
    assert reason is not None and f"{MIN_RATE:,}-{MAX_RATE:,} Hz" in reason
    assert skip_kind(reason) == "implausible sample rate"


def test_header_rule_bounds(tmp_path: Path) -> None:
    """The rule is the header's, so a long or many-channel file is refused before a sample is decoded."""
    from finser.data.audio import MAX_SECONDS, AudioError, check_header

    with pytest.raises(AudioError, match="longer than"):
        check_header(tmp_path / "long.wav", SAMPLE_RATE, MAX_SECONDS * SAMPLE_RATE + 1, 1)
    with pytest.raises(AudioError, match="channels"):
        check_header(tmp_path / "wide.wav", SAMPLE_RATE, SAMPLE_RATE, MAX_CHANNELS + 1)
    check_header(tmp_path / "fine.wav", MIN_RATE, MAX_SECONDS * MIN_RATE, MAX_CHANNELS)


def crash_on(victim: str) -> Callable[[str, AudioSpec, int], np.ndarray]:
    real = cache_module.render

    def render(path: str, spec: AudioSpec, seed: int = 0) -> np.ndarray:
        if path == victim:
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, spec, seed)

    return render


def test_dead_worker_names_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder that kills its process (as soxr did on a 1 Hz header) skips that file with its reason; the others
    are cached, and no BrokenProcessPool reaches the caller."""
    good = [write_hostile(tmp_path, name) for name in ("eight_bit", "float64", "six_channels", "twenty_four_bit")]
    victim = str(good[1])
    monkeypatch.setattr(cache_module, "render", crash_on(victim))  # forked workers inherit it
    cache = DecodedCache(tmp_path / "cache", AudioSpec(duration=0.5), workers=2)
    failures = cache.ensure([str(path) for path in good])
    assert list(failures) == [victim]
    assert victim in failures[victim] and "process died" in failures[victim]
    for path in good:
        if str(path) != victim:
            assert cache.signal(str(path)).size == round(0.5 * SAMPLE_RATE)
    assert load_audio(victim).size == SAMPLE_RATE

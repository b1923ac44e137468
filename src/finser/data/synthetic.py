"""The embedded corpus: emotional speech-like audio generated locally, deterministically, from a seed.

A source-filter model: a glottal pulse train (pitch contour with declination, accents and jitter, breath noise,
spectral tilt) through time-varying formant resonators, plus filtered-noise consonants and pauses. Each speaker has
a base pitch and a vocal-tract scale; each emotion a prosody profile. Every clip draws its parameters around its
emotion's profile, so classes overlap: exact features separate them well above chance but not perfectly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import lfilter

from finser.console import track
from finser.cores import parallel_map, usable_cores
from finser.data.audio import SAMPLE_RATE
from finser.data.labels import EMOTIONS, Clip, read_manifest, write_manifest
from finser.data.locks import exclusive
from finser.errors import FinserError

log = logging.getLogger(__name__)
WAV_HEADER_BYTES = 44

BLOCK = 256  # samples per formant update: formants glide between vowels, updated every ~12 ms

# Prosody profiles: pitch level (× speaker base), pitch range (semitones), syllables per second, loudness (dB),
# breath noise (ratio), glottal tilt (one-pole coefficient; higher is darker), jitter (relative period spread).
PROFILES: dict[str, dict[str, float]] = {
    "neutral": dict(pitch=1.00, range=2.0, rate=4.0, loudness=0.0, breath=0.05, tilt=0.95, jitter=0.010),
    "calm": dict(pitch=0.94, range=1.5, rate=3.3, loudness=-5.0, breath=0.12, tilt=0.965, jitter=0.008),
    "happy": dict(pitch=1.22, range=5.0, rate=4.6, loudness=3.0, breath=0.05, tilt=0.93, jitter=0.014),
    "sad": dict(pitch=0.90, range=1.2, rate=3.0, loudness=-6.0, breath=0.18, tilt=0.975, jitter=0.020),
    "angry": dict(pitch=1.28, range=4.0, rate=5.0, loudness=7.0, breath=0.03, tilt=0.90, jitter=0.020),
    "fear": dict(pitch=1.38, range=3.0, rate=5.4, loudness=-2.0, breath=0.15, tilt=0.94, jitter=0.040),
    "disgust": dict(pitch=0.96, range=3.0, rate=3.3, loudness=1.0, breath=0.10, tilt=0.955, jitter=0.016),
    "surprise": dict(pitch=1.42, range=7.0, rate=4.5, loudness=4.0, breath=0.06, tilt=0.93, jitter=0.012),
}

# Vowel formants (Hz) of an adult male vocal tract; scaled up for shorter tracts.
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]], dtype=float
)
FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 140.0])


@dataclass(frozen=True)
class SyntheticCorpusSpec:
    """Everything that shapes the generated corpus: its hash names the cache folder."""

    seed: int = 0
    n_speakers: int = 12
    clips_per_emotion: int = 6
    min_seconds: float = 2.0
    max_seconds: float = 4.0
    variability: float = 1.0

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def _resonator(frequency: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * frequency / SAMPLE_RATE
    a = np.array([1.0, -2 * radius * np.cos(theta), radius**2])
    return np.array([a.sum()]), a  # unit gain at DC keeps loudness comparable across formants


def _formant_filter(source: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Cascade of three resonators whose frequencies follow ``formants`` (blocks × 3), state carried per block."""
    out = source.copy()
    for index in range(3):
        state = np.zeros(2)
        for block in range(formants.shape[0]):
            segment = slice(block * BLOCK, (block + 1) * BLOCK)
            b, a = _resonator(formants[block, index], FORMANT_BANDWIDTHS[index])
            out[segment], state = lfilter(b, a, out[segment], zi=state)
    return out


def _speaker(seed: int, speaker: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, speaker, 7919])
    female = speaker % 2 == 1
    return {
        "base_pitch": (205.0 if female else 115.0) * rng.uniform(0.85, 1.15),
        "tract_scale": (1.16 if female else 1.0) * rng.uniform(0.94, 1.06),
        "loudness": rng.normal(0.0, 2.0),
    }


def clip_audio(spec: SyntheticCorpusSpec, speaker: int, emotion: str, index: int) -> np.ndarray:
    """One clip, fully determined by (seed, speaker, emotion, index)."""
    rng = np.random.default_rng([spec.seed, speaker, EMOTIONS.index(emotion), index])
    voice = _speaker(spec.seed, speaker)
    spread = spec.variability
    profile = {
        name: value * np.exp(rng.normal(0.0, 0.12 * spread))
        if name != "loudness"
        else value + rng.normal(0, 3 * spread)
        for name, value in PROFILES[emotion].items()
    }
    profile["tilt"] = float(np.clip(PROFILES[emotion]["tilt"] + rng.normal(0, 0.012 * spread), 0.85, 0.99))
    n_samples = int(rng.uniform(spec.min_seconds, spec.max_seconds) * SAMPLE_RATE)
    n_blocks = -(-n_samples // BLOCK)
    length = n_blocks * BLOCK

    # Syllable plan: voiced nuclei, optional noise consonants before them, pauses between phrases.
    voiced_gain = np.zeros(length)
    noise_gain = np.zeros(length)
    noise_centre = np.zeros(length)
    vowel_targets = np.zeros((n_blocks, 3))
    accent = np.zeros(length)
    position = int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
    while position < length - 0.1 * SAMPLE_RATE:
        if rng.random() < 0.3:
            consonant = int(rng.uniform(0.03, 0.09) * SAMPLE_RATE)
            end = min(position + consonant, length)
            noise_gain[position:end] = np.hanning(end - position) * rng.uniform(0.15, 0.5)
            noise_centre[position:end] = rng.choice([2500.0, 4200.0, 6000.0])
            position = end
        nucleus = int(rng.uniform(0.6, 1.3) / profile["rate"] * SAMPLE_RATE)
        end = min(position + nucleus, length)
        stress = rng.uniform(0.5, 1.0)
        voiced_gain[position:end] = np.hanning(end - position) ** 0.5 * stress
        accent[position:end] = np.hanning(end - position) * (stress - 0.5) * 2
        vowel = VOWELS[rng.integers(len(VOWELS))] * voice["tract_scale"] * rng.uniform(0.95, 1.05, size=3)
        vowel_targets[position // BLOCK : end // BLOCK + 1] = vowel
        position = end + int(rng.exponential(0.04) * SAMPLE_RATE)
        if rng.random() < 0.12:
            position += int(rng.uniform(0.1, 0.35) * SAMPLE_RATE)
    # Formants glide: fill gaps with the previous vowel, then smooth across blocks.
    for block in range(n_blocks):
        if not vowel_targets[block].any():
            vowel_targets[block] = vowel_targets[block - 1] if block else VOWELS[0] * voice["tract_scale"]
    kernel = np.hanning(7) / np.hanning(7).sum()
    formants = np.stack([np.convolve(vowel_targets[:, k], kernel, mode="same") for k in range(3)], axis=1)
    formants[:3] = vowel_targets[:3]
    formants[-3:] = vowel_targets[-3:]

    # Pitch contour: emotion level × speaker base, phrase declination (rising for surprise), accents, jitter.
    time = np.arange(length) / SAMPLE_RATE
    slope = 0.6 if emotion == "surprise" else -0.35
    semitones = profile["range"] * (accent + slope * time / time[-1]) + rng.normal(0, 0.3)
    pitch = voice["base_pitch"] * profile["pitch"] * 2 ** (semitones / 12)
    pitch *= 1 + profile["jitter"] * rng.standard_normal(length).cumsum() / np.sqrt(np.arange(1, length + 1))
    phase = np.cumsum(pitch / SAMPLE_RATE)
    pulses = np.zeros(length)
    pulse_positions = np.searchsorted(phase, np.arange(1, int(phase[-1])))
    pulses[pulse_positions] = 1 + profile["jitter"] * rng.standard_normal(len(pulse_positions))
    glottal = lfilter([1.0], [1.0, -profile["tilt"]], pulses)
    glottal -= lfilter([1.0], [1.0, -0.99], glottal) * (1 - 0.99)  # remove DC drift
    breath = profile["breath"] * rng.standard_normal(length)
    voiced = _formant_filter((glottal + breath) * voiced_gain, formants)

    noise = rng.standard_normal(length) * noise_gain
    hiss = lfilter([1.0, -1.0], [1.0, -0.3], noise)  # consonant noise, high-frequency weighted
    bright = noise_centre > 4000
    hiss[bright] = lfilter([1.0, -2.0, 1.0], [1.0], noise)[bright] * 0.5

    signal = voiced / (np.abs(voiced).max() + 1e-9) + 0.6 * hiss
    signal += 10 ** (-60 / 20) * rng.standard_normal(length)  # room noise floor
    gain_db = profile["loudness"] + voice["loudness"] - 14.0
    signal = signal[:n_samples] / (np.abs(signal).max() + 1e-9) * 10 ** (gain_db / 20)
    return np.clip(signal, -0.99, 0.99).astype(np.float32)


def _write_clip(args: tuple[SyntheticCorpusSpec, int, str, int, Path]) -> None:
    """Write one clip; a failed write (a full disk: libsndfile says only "error 2") names the file and the bytes."""
    spec, speaker, emotion, index, path = args
    signal = clip_audio(spec, speaker, emotion, index)
    try:
        soundfile.write(path, signal, SAMPLE_RATE, subtype="PCM_16")
    except (OSError, soundfile.SoundFileError) as error:
        path.unlink(missing_ok=True)
        needed, free = 2 * signal.size + WAV_HEADER_BYTES, shutil.disk_usage(path.parent).free
        raise FinserError(
            f"cannot write the embedded corpus's {path}: it needs {needed:,} bytes and {free:,} are free on that disk "
            f"({type(error).__name__}: {error}); free space there, or point paths.cache_dir at a disk with room"
        ) from None


@dataclass(frozen=True)
class PlannedClip:
    """One clip to generate: its voice (``speaker``, a number unique in the corpus), label and file name."""

    corpus: str
    speaker: int
    speaker_name: str
    emotion: str
    index: int
    file_name: str


def speaker_clips(corpus: str, voice: int, name: str, emotion: str, n_clips: int, digits: int) -> list[PlannedClip]:
    """One speaker's ``n_clips`` of one emotion, named ``<name>_<emotion>_<index>.wav``."""
    return [
        PlannedClip(corpus, voice, name, emotion, index, f"{name}_{emotion}_{index:0{digits}d}.wav")
        for index in range(n_clips)
    ]


def grid_plan(n_speakers: int, clips_per_emotion: int) -> list[PlannedClip]:
    """The default corpus: every speaker says every emotion ``clips_per_emotion`` times."""
    return [
        clip
        for speaker in range(n_speakers)
        for emotion in EMOTIONS
        for clip in speaker_clips("synthetic", speaker, f"spk{speaker:02d}", emotion, clips_per_emotion, 2)
    ]


# The study's union (RAVDESS speech, CREMA-D, TESS, SAVEE; docs/corpora.md): speakers and clips per emotion of each
# corpus, 12,161 clips in all (CREMA-D's sad has 1,270: one of its files has no audio and the study dropped it).
STUDY_SHAPE: dict[str, tuple[int, dict[str, int]]] = {
    "ravdess": (24, {"neutral": 96} | {emotion: 192 for emotion in EMOTIONS if emotion != "neutral"}),
    "crema_d": (91, {"neutral": 1087, "happy": 1271, "sad": 1270, "angry": 1271, "fear": 1271, "disgust": 1271}),
    "tess": (2, {emotion: 400 for emotion in EMOTIONS if emotion != "calm"}),
    "savee": (4, {"neutral": 120} | {emotion: 60 for emotion in EMOTIONS if emotion not in ("neutral", "calm")}),
}


def deal(total: int, n_speakers: int) -> list[int]:
    """``total`` clips over ``n_speakers`` as evenly as whole clips allow, the first speakers taking the rest."""
    share, rest = divmod(total, n_speakers)
    return [share + (speaker < rest) for speaker in range(n_speakers)]


def study_plan(scale: float = 1.0) -> list[PlannedClip]:
    """The study's shape at ``scale``: each corpus's speakers, each emotion's count × ``scale`` (rounded) dealt over
    them. Voices are numbered across corpora, so no two corpora share a speaker."""
    if not 0 < scale <= 1:
        raise FinserError(f"dataset.index.scale={scale}: expected a fraction of the study's corpus in (0, 1]")
    plan, first_voice = [], 0
    for corpus, (n_speakers, counts) in STUDY_SHAPE.items():
        for emotion, total in counts.items():
            for speaker, n_clips in enumerate(deal(round(total * scale), n_speakers)):
                plan += speaker_clips(corpus, first_voice + speaker, f"{corpus}_{speaker:02d}", emotion, n_clips, 3)
        first_voice += n_speakers
    return plan


def build_synthetic_corpus(
    root: str | Path,
    seed: int = 0,
    n_speakers: int = 12,
    clips_per_emotion: int = 6,
    min_seconds: float = 2.0,
    max_seconds: float = 4.0,
    variability: float = 1.0,
    workers: int | None = None,
) -> list[Clip]:
    """Generate (once) and index the embedded corpus under ``root/<hash of the options>/``.

    A folder with a manifest for the same options is reused; the manifest is written last and atomically, so an
    interrupted generation is redone rather than half used. ``workers`` processes generate it (None: one per usable
    core).
    """
    spec = SyntheticCorpusSpec(seed, n_speakers, clips_per_emotion, min_seconds, max_seconds, variability)
    return _cached(Path(root) / f"synthetic-{spec.key()}", spec, grid_plan(n_speakers, clips_per_emotion), workers)


def build_study_corpus(
    root: str | Path,
    seed: int = 0,
    scale: float = 1.0,
    min_seconds: float = 2.0,
    max_seconds: float = 5.0,
    variability: float = 1.0,
    workers: int | None = None,
) -> list[Clip]:
    """The embedded corpus in the study's shape (:data:`STUDY_SHAPE`, 12,161 clips at ``scale`` 1), generated once
    under ``root/<hash of the options>/`` as :func:`build_synthetic_corpus` does; clips carry their corpus's name."""
    plan = study_plan(scale)
    voices = sum(n_speakers for n_speakers, _ in STUDY_SHAPE.values())
    spec = SyntheticCorpusSpec(seed, voices, 0, min_seconds, max_seconds, variability)
    key = hashlib.sha1(f"study-{scale}-{spec.key()}".encode()).hexdigest()[:10]
    return _cached(Path(root) / f"synthetic-study-{key}", spec, plan, workers)


def _cached(folder: Path, spec: SyntheticCorpusSpec, plan: list[PlannedClip], workers: int | None) -> list[Clip]:
    manifest = folder / "manifest.csv"
    if manifest.exists():
        return read_manifest(manifest)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / ".generate.lock"):  # runs started together: one generates, the others wait and read
        if manifest.exists():
            return read_manifest(manifest)
        return _generate(spec, folder, plan, workers or usable_cores())


def _generate(spec: SyntheticCorpusSpec, folder: Path, plan: list[PlannedClip], workers: int) -> list[Clip]:
    jobs = [(spec, clip.speaker, clip.emotion, clip.index, folder / clip.file_name) for clip in plan]
    clips = [Clip(str(folder / clip.file_name), clip.corpus, clip.speaker_name, clip.emotion) for clip in plan]
    log.info("Generating the synthetic corpus: %d clips in %s", len(jobs), folder)
    for _ in track(parallel_map(_write_clip, jobs, workers), len(jobs), "generating the synthetic corpus", log):
        pass
    (folder / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
    write_manifest(clips, folder / "manifest.csv")
    return clips

"""Corpus adapters: a root folder → manifest rows, labels parsed from file names (docs/corpora.md).

Each corpus is one name parser in :data:`CORPORA`: file path → :class:`Parsed` (or None when the name is not in that
corpus's naming; :class:`LabelError` when it is but a field is unusable). :func:`scan` walks a root once for any set of
corpora, de-duplicates by canonical file name, validates every file and lists each skipped one with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from finser.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, read_native
from finser.data.labels import Clip, read_manifest
from finser.data.locks import exclusive, read_json, remove_stale_temporaries
from finser.errors import FinserError

log = logging.getLogger(__name__)

STUDY_CORPORA = ("ravdess", "crema_d", "tess", "savee")
INDEX_FORMAT = 2  # 2: linked folders followed, unreadable folders and files listed as skipped


class LabelError(FinserError):
    """A file named in a corpus's scheme whose fields do not decode to a usable clip."""


@dataclass(frozen=True)
class Parsed:
    """What a file name says: ``utterance`` is the canonical name that identifies the recording (de-dup key)."""

    utterance: str
    speaker: str
    emotion: str


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Index:
    clips: list[Clip] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


# RAVDESS: modality-channel-emotion-intensity-statement-repetition-actor, e.g. 03-01-06-01-02-01-12.
RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}


def parse_ravdess(path: Path) -> Parsed | None:
    match = RAVDESS_NAME.match(path.stem)
    if match is None:
        return None
    modality, channel, emotion, *_, actor = match.groups()
    if modality != "03" or channel != "01":
        raise LabelError(f"RAVDESS modality {modality} channel {channel}: finser uses audio-only speech (03-01)")
    if emotion not in RAVDESS_EMOTIONS:
        raise LabelError(f"unknown RAVDESS emotion code {emotion!r}")
    return Parsed(path.stem, actor, RAVDESS_EMOTIONS[emotion])


# CREMA-D: actor_sentence_emotion_level, e.g. 1001_DFA_ANG_XX. One copy has a file with level "X": accept any level.
CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
CREMA_D_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def parse_crema_d(path: Path) -> Parsed | None:
    match = CREMA_D_NAME.match(path.stem)
    if match is None:
        return None
    actor, _, emotion, _ = match.groups()
    if emotion not in CREMA_D_EMOTIONS:
        raise LabelError(f"unknown CREMA-D emotion code {emotion!r}")
    return Parsed(path.stem, actor, CREMA_D_EMOTIONS[emotion])


# TESS: {OAF|YAF}_{word}_{emotion}; folder case varies between copies, so only the file name is read.
TESS_NAME = re.compile(r"^(OAF|YAF)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)
TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprise",
    "sad": "sad",
}


def parse_tess(path: Path) -> Parsed | None:
    match = TESS_NAME.match(path.stem)
    if match is None:
        return None
    speaker, word, emotion = match.group(1).upper(), match.group(2).lower(), match.group(3).lower()
    if emotion not in TESS_EMOTIONS:
        raise LabelError(f"unknown TESS emotion {emotion!r}")
    return Parsed(f"{speaker}_{word}_{emotion}", speaker, TESS_EMOTIONS[emotion])


# SAVEE: Kaggle copy ALL/DC_a01.wav, original AudioData/DC/a01.wav (speaker from the folder). Two-letter codes first.
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_CODE = r"(sa|su|a|d|f|h|n)(\d{2})"
SAVEE_FLAT = re.compile(rf"^({'|'.join(SAVEE_SPEAKERS)})_{SAVEE_CODE}$")
SAVEE_NESTED = re.compile(rf"^{SAVEE_CODE}$")
SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}


def parse_savee(path: Path) -> Parsed | None:
    flat = SAVEE_FLAT.match(path.stem)
    if flat is not None:
        speaker, code, number = flat.groups()
    else:
        nested = SAVEE_NESTED.match(path.stem)
        if nested is None or path.parent.name not in SAVEE_SPEAKERS:
            return None
        speaker, (code, number) = path.parent.name, nested.groups()
    return Parsed(f"{speaker}_{code}{number}", speaker, SAVEE_EMOTIONS[code])


# ESD: <speaker>/<Emotion>/[train|evaluation|test/]<speaker>_<utterance>.wav; the emotion is the utterance-id block.
ESD_NAME = re.compile(r"^(\d{4})_(\d{6})$")
ESD_BLOCKS = ("neutral", "angry", "happy", "sad", "surprise")
ESD_BLOCK_SIZE = 350
ESD_ENGLISH = tuple(f"{speaker:04d}" for speaker in range(11, 21))


def parse_esd(path: Path) -> Parsed | None:
    match = ESD_NAME.match(path.stem)
    if match is None:
        return None
    speaker, utterance = match.group(1), int(match.group(2))
    if speaker not in ESD_ENGLISH:
        raise LabelError(f"ESD speaker {speaker} is Mandarin (0001-0010): finser uses the English speakers")
    block = (utterance - 1) // ESD_BLOCK_SIZE
    if not 0 <= block < len(ESD_BLOCKS):
        raise LabelError(f"ESD utterance id {utterance} is outside the five emotion blocks (1-1750)")
    return Parsed(path.stem, speaker, ESD_BLOCKS[block])


def esd_official_split(path: str) -> str:
    """ESD's own split per emotion: evaluation = first 20 utterances (→ val), test = next 30, train = last 300."""
    position = (int(Path(path).stem.split("_")[1]) - 1) % ESD_BLOCK_SIZE
    return "val" if position < 20 else "test" if position < 50 else "train"


CORPORA: dict[str, Callable[[Path], Parsed | None]] = {
    "ravdess": parse_ravdess,
    "crema_d": parse_crema_d,
    "tess": parse_tess,
    "savee": parse_savee,
    "esd": parse_esd,
}


def validate(path: Path) -> str | None:
    """Why a file cannot be a clip (decoded at its own rate: cheap), or None when it is usable."""
    try:
        samples, native_rate = read_native(path)
    except AudioError as error:
        return str(error).removeprefix(f"{path}: ")
    if not np.isfinite(samples).all():
        return "contains NaN or inf samples"
    resampled = samples.size * SAMPLE_RATE / native_rate
    if resampled < MIN_SAMPLES:
        return f"{samples.size / native_rate:.3f} s is shorter than one {MIN_SAMPLES}-sample window at {SAMPLE_RATE} Hz"
    return None


@dataclass
class Listing:
    """The .wav files under a root, and every folder, link or file the walk could not use, with why."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def folder_error(error: OSError) -> Skipped:
    """A folder ``os.walk`` could not list: its true reason, not a silent drop."""
    if isinstance(error, PermissionError):
        return Skipped(str(error.filename), "permission denied: folder not readable")
    return Skipped(str(error.filename), f"folder not readable ({error.strerror})")


def entry_problem(path: Path) -> str | None:
    """Why a name in a folder cannot be a clip's file: a link to nowhere, or a .wav that is not a regular file."""
    if path.is_symlink():
        try:
            path.stat()
        except FileNotFoundError:
            return f"broken symbolic link: {Path(os.readlink(path))} does not exist"
        except OSError as error:  # e.g. links that lead to each other
            return f"symbolic link cannot be followed ({error.strerror})"
    if path.suffix.lower() == ".wav" and not path.is_file():
        return "not a regular file"
    return None


def repeated_folder(path: Path, walked: dict[tuple[int, int], Path]) -> str | None:
    """Why a (linked) folder is not walked again: it is one already walked; otherwise record it and say None."""
    status = path.stat()
    first = walked.setdefault((status.st_dev, status.st_ino), path)
    if first == path:
        return None
    if first in path.parents:
        return f"symbolic link loop: leads back to {first}"
    return f"same folder as {first}, already scanned"


def audio_files(root: Path) -> Listing:
    """Every .wav under root (any case), least nested first, so the canonical copy of a duplicate comes first.

    Linked folders are followed (a copy may link actor folders from elsewhere), each real folder once: a link back
    to a folder already walked is listed as skipped instead of looping or counting its files twice.
    """
    listing = Listing()
    status = root.stat()
    walked = {(status.st_dev, status.st_ino): root}
    walk = os.walk(root, followlinks=True, onerror=lambda error: listing.skipped.append(folder_error(error)))
    for folder, subfolders, names in walk:
        subfolders.sort(key=lambda name: (os.path.islink(os.path.join(folder, name)), name))  # real before links
        for name in list(subfolders):
            reason = repeated_folder(Path(folder, name), walked)
            if reason is not None:
                subfolders.remove(name)
                listing.skipped.append(Skipped(os.path.join(folder, name), reason))
        for name in names:
            path = Path(folder, name)
            reason = entry_problem(path)
            if reason is not None:
                listing.skipped.append(Skipped(str(path), reason))
            elif path.suffix.lower() == ".wav":
                listing.files.append(path)
    listing.files.sort(key=lambda path: (len(path.parts), str(path)))
    return listing


def parse(path: Path, names: Sequence[str]) -> tuple[str, Parsed]:
    """The first selected corpus whose naming the file follows; LabelError says why none does."""
    for name in names:
        parsed = CORPORA[name](path)
        if parsed is not None:
            return name, parsed
    others = [name for name in CORPORA if name not in names and CORPORA[name](path) is not None]
    if others:
        raise LabelError(f"named like a file of {others[0]}, which this dataset ({', '.join(names)}) does not include")
    raise LabelError(f"file name matches no {', '.join(names)} naming (see docs/corpora.md)")


def check_root(root: str | Path | None, names: Sequence[str]) -> Path:
    if root is None or not Path(root).is_dir():
        raise FinserError(
            f"dataset.root '{root}' does not exist or is not a folder: download {', '.join(names)} "
            f"(see docs/corpora.md) and pass dataset.root=..."
        )
    return Path(root)


def scan(root: str | Path, names: Sequence[str]) -> Index:
    """Walk ``root`` once: parse, de-duplicate by canonical name, validate; every rejected file is kept with why."""
    root = check_root(root, names)
    unknown = [name for name in names if name not in CORPORA]
    if unknown:
        raise FinserError(f"unknown corpus {unknown}: choose from {sorted(CORPORA)}")
    listing = audio_files(root)
    index = Index(skipped=listing.skipped)
    seen: dict[tuple[str, str], Path] = {}
    for path in listing.files:
        try:
            corpus, parsed = parse(path, names)
        except LabelError as error:
            index.skipped.append(Skipped(str(path), str(error)))
            continue
        first = seen.setdefault((corpus, parsed.utterance), path)
        if first != path:  # e.g. RAVDESS copies with Actor_XX/ both at the top and inside audio_speech_actors_01-24/
            index.skipped.append(Skipped(str(path), f"duplicate of {first}"))
            continue
        reason = validate(path)
        if reason is not None:
            index.skipped.append(Skipped(str(path), reason))
            continue
        index.clips.append(Clip(str(path), corpus, parsed.speaker, parsed.emotion))
    return index


def listing_key(root: Path, names: Sequence[str]) -> str:
    """Names, sizes and modification times of every file: a changed corpus hashes to a new index."""
    digest = hashlib.sha1(json.dumps([INDEX_FORMAT, sorted(names), str(root.resolve())]).encode())
    for path in audio_files(root).files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_scan(root: str | Path, names: Sequence[str], cache_dir: str | Path | None = None) -> Index:
    """:func:`scan`, reused from ``cache_dir`` while the files are unchanged (validation decodes every file).

    Runs indexing the same corpora take turns (a lock): one scans, the others read its index, and the holder removes
    temporaries of a scan that was killed. A damaged index is scanned again.
    """
    root = check_root(root, names)
    if cache_dir is None:
        return scan(root, names)
    prefix = "+".join(names)
    folder = Path(cache_dir) / "index"
    cached = folder / f"{prefix}-{listing_key(root, names)}.json"
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / f".{prefix}.lock"):
        remove_stale_temporaries(folder, f"{prefix}-*.tmp")
        rows = read_json(cached, "scanning the corpus again")
        if rows is None:
            index = scan(root, names)
            rows = {
                "clips": [asdict(clip) for clip in index.clips],
                "skipped": [asdict(entry) for entry in index.skipped],
            }
            temporary = cached.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(rows))
            temporary.replace(cached)
    return Index([Clip(**row) for row in rows["clips"]], [Skipped(**row) for row in rows["skipped"]])


SKIP_KINDS = (  # reason fragment → short kind, for the summary line
    ("permission denied", "permission denied"),
    ("folder not readable", "unreadable folder"),
    ("symbolic link", "broken or looping link"),
    ("same folder as", "linked folder seen twice"),
    ("not a regular file", "not a regular file"),
    ("duplicate of", "duplicate"),
    ("git-lfs", "git-lfs pointer"),
    ("which this dataset", "other corpus"),
    ("matches no", "unrecognised name"),
    ("empty file", "empty"),
    ("not readable", "not audio / damaged"),
    ("NaN", "NaN/inf samples"),
    ("shorter than", "too short"),
    ("its header says", "implausible sample rate"),
    ("longer than the", "too long"),
    ("channels, outside", "too many channels"),
    ("decoding process died", "decoder crash"),
)


def skip_kind(reason: str) -> str:
    return next((kind for fragment, kind in SKIP_KINDS if fragment in reason), "unusable label")


def summarise_skipped(skipped: Sequence[Skipped]) -> str:
    """Counts per kind of reason, e.g. ``3 × duplicate, 1 × git-lfs pointer``."""
    kinds = Counter(skip_kind(entry.reason) for entry in skipped)
    return ", ".join(f"{count} × {kind}" for kind, count in kinds.most_common())


def index_corpora(
    names: Sequence[str], root: str | Path | None, cache_dir: str | Path | None = None, manifest: str | None = None
) -> list[Clip]:
    """The ``dataset.index`` target: usable clips of the named corpora under ``root`` (or read from ``manifest``).

    Skipped files are logged with their reasons; no usable clip at all is an error naming the root.
    """
    names = list(names)
    if manifest is not None:
        return manifest_clips(Path(manifest))
    index = cached_scan(root, names, cache_dir)
    for entry in index.skipped:  # files of corpora not selected (e.g. ESD beside the study's four) only at INFO
        level = logging.INFO if skip_kind(entry.reason) == "other corpus" else logging.WARNING
        log.log(level, "skipped %s: %s", entry.path, entry.reason)
    if index.skipped:
        log.warning("skipped %d paths: %s", len(index.skipped), summarise_skipped(index.skipped))
    if not index.clips:
        raise FinserError(no_clips_message(root, names, index))
    log.info("indexed %d clips of %s under %s", len(index.clips), "+".join(names), root)
    return index.clips


def manifest_clips(manifest: Path) -> list[Clip]:
    """A prepared manifest's clips, whose files must all be there: a moved corpus fails now, not mid-run."""
    clips = read_manifest(manifest)
    missing = [clip.path for clip in clips if not Path(clip.path).is_file()]
    if missing:
        raise FinserError(
            f"dataset.manifest={manifest}: {len(missing)} of {len(clips)} files do not exist, e.g. {missing[0]}: the "
            "corpus moved, or the manifest is older than finser's absolute paths (its paths were relative to where it "
            "was written): re-run scripts/prepare_corpora.py"
        )
    return clips


def no_clips_message(root: str | Path | None, names: Sequence[str], index: Index) -> str:
    lfs = sum("git-lfs" in entry.reason for entry in index.skipped)
    advice = f" {lfs} are git-lfs pointer files: install git-lfs and run `git lfs pull` in the clone." if lfs else ""
    return (
        f"no usable {'+'.join(names)} clip under dataset.root '{root}': {len(index.skipped)} path(s) skipped "
        f"({summarise_skipped(index.skipped) or 'no .wav files found'}).{advice} Point dataset.root at the "
        f"downloaded corpus (see docs/corpora.md)."
    )

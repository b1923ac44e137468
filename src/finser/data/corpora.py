"""Corpus adapters: a root folder → manifest rows, labels parsed from file names or read from side files
(docs/corpora.md).

Each corpus is one :class:`Adapter` in :data:`CORPORA`: the emotions it declares, and either a name parser (file path
→ :class:`Parsed`, or None when the name is not in that corpus's naming; :class:`LabelError` when it is but a field is
unusable) or a side-file reader (the walk's :class:`Listing` → :class:`Found`: IEMOCAP's label files, whose
utterances are cut from dialog wavs). :func:`scan` walks a root once for any set of corpora, de-duplicates by
canonical name, validates every file and lists each skipped one with its reason.
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
import soundfile

from finser.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, read_native
from finser.data.labels import EMOTIONS, Clip, canonical_order, read_manifest, segment_path, split_segment
from finser.data.locks import exclusive, read_json, remove_stale_temporaries
from finser.errors import FinserError

log = logging.getLogger(__name__)

STUDY_CORPORA = ("ravdess", "crema_d", "tess", "savee")
INDEX_FORMAT = 3  # 2: linked folders followed, unreadable folders and files listed as skipped; 3: side files, cuts


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
    """Usable clips, skipped paths with why, and per corpus the utterances its protocol leaves out (label → count)."""

    clips: list[Clip] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)


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


@dataclass
class Listing:
    """The .wav files under a root, the .txt files a corpus may read labels from, and every folder, link or file the
    walk could not use, with why."""

    files: list[Path] = field(default_factory=list)
    side_files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class Found:
    """What a side-file reader found: clips, skipped paths, the wavs it read (no name parser sees them again) and
    the utterances its protocol leaves out (label → count)."""

    clips: list[Clip] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    claimed: set[Path] = field(default_factory=set)
    excluded: Counter[str] = field(default_factory=Counter)


# IEMOCAP: IEMOCAP_full_release/Session<N>/dialog/wav/<dialog>.wav, labelled by Session<N>/dialog/EmoEvaluation/
# <dialog>.txt, one "[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]" line per utterance (the rest: a header,
# annotators' lines). The 4-class protocol: neutral, happy with excited merged into it, sad, angry.
IEMOCAP_EMOTIONS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
IEMOCAP_SESSIONS = tuple(f"Session{session}" for session in range(1, 6))
IEMOCAP_LINE = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\t(\S+)\t(\w+)\t\[.*\]\s*$")


def iemocap_session(path: Path, folder: str) -> str | None:
    """The session of ``Session<N>/dialog/<folder>/<file>``, or None for any other path."""
    parts = path.parts
    if len(parts) < 4 or parts[-2] != folder or parts[-3] != "dialog" or parts[-4] not in IEMOCAP_SESSIONS:
        return None
    return parts[-4]


def read_iemocap(listing: Listing) -> Found:
    """Every labelled utterance of every dialog, cut from its dialog wav (``<wav>#t=<start>,<end>``).

    A dialog wav without its label file, a label file without its wav, an unreadable wav, an utterance line that
    does not parse and times outside the wav are skipped with path and reason; labels outside the 4-class protocol
    are counted in ``excluded``, not listed one by one. The per-sentence wavs (``sentences/wav``) are claimed too:
    the dialog wavs hold the same audio.
    """
    found = Found()
    wavs = {path for path in listing.files if iemocap_session(path, "wav")}
    for path in listing.files:
        if len(path.parts) >= 5 and path.parts[-3] == "wav" and path.parts[-4] == "sentences":
            found.claimed.add(path)
            found.skipped.append(Skipped(str(path), "IEMOCAP sentence wav: finser cuts the dialog wavs instead"))
    for labels in listing.side_files:
        session = iemocap_session(labels, "EmoEvaluation")
        if session is None:
            continue
        wav = labels.parent.parent / "wav" / f"{labels.stem}.wav"
        if wav not in wavs:
            found.skipped.append(Skipped(str(labels), f"label file without its dialog wav: {wav} does not exist"))
            continue
        found.claimed.add(wav)
        dialog_utterances(labels, wav, session, found)
    for wav in sorted(wavs - found.claimed):
        found.claimed.add(wav)
        label_file = wav.parent.parent / "EmoEvaluation" / f"{wav.stem}.txt"
        found.skipped.append(Skipped(str(wav), f"dialog wav without its label file: {label_file} does not exist"))
    return found


def dialog_utterances(labels: Path, wav: Path, session: str, found: Found) -> None:
    """Add one dialog's utterances to ``found``; its wav is decoded once, to check it and to bound the times."""
    reason = validate(wav, min_samples=0)
    if reason is not None:
        found.skipped.append(Skipped(str(wav), reason))
        return
    duration = read_duration(wav)
    try:
        lines = labels.read_text(errors="replace").splitlines()
    except OSError as error:
        found.skipped.append(Skipped(str(labels), f"label file not readable ({error.strerror})"))
        return
    for number, line in enumerate(lines, start=1):
        if not line.startswith("["):  # the header, annotators' lines (C-E1:, A-E3:, ...), blank lines
            continue
        where = f"{labels}:{number}"
        match = IEMOCAP_LINE.match(line)
        if match is None:
            found.skipped.append(Skipped(where, f"unparseable utterance line {line.strip()[:80]!r}"))
            continue
        start, end, utterance, label = float(match[1]), float(match[2]), match[3], match[4]
        if label not in IEMOCAP_EMOTIONS:
            found.excluded[label] += 1
            continue
        problem = segment_problem(start, end, duration, wav)
        if problem is not None:
            found.skipped.append(Skipped(where, f"{utterance}: {problem}"))
            continue
        found.clips.append(Clip(segment_path(str(wav), start, end), "iemocap", session, IEMOCAP_EMOTIONS[label]))


def segment_problem(start: float, end: float, duration: float, wav: Path) -> str | None:
    """Why ``start``..``end`` seconds of a wav of ``duration`` seconds cannot be a clip, or None."""
    if not 0 <= start < end:
        return f"segment {start:g}-{end:g} s is empty or reversed"
    if end > duration:
        return f"segment {start:g}-{end:g} s ends past the end of {wav} ({duration:.4f} s)"
    if (end - start) * SAMPLE_RATE < MIN_SAMPLES:
        return f"{end - start:.3f} s is shorter than one {MIN_SAMPLES}-sample window at {SAMPLE_RATE} Hz"
    return None


def read_duration(path: Path) -> float:
    """Seconds of audio in a file its header describes (validated by :func:`validate` before)."""
    with soundfile.SoundFile(path) as handle:
        return handle.frames / handle.samplerate


@dataclass(frozen=True)
class Adapter:
    """One corpus: the emotions it declares (canonical order) and where its labels are, in the file name
    (``parse``) or in side files (``read``)."""

    emotions: tuple[str, ...]
    parse: Callable[[Path], Parsed | None] | None = None
    read: Callable[[Listing], Found] | None = None


CORPORA: dict[str, Adapter] = {
    "ravdess": Adapter(canonical_order(RAVDESS_EMOTIONS.values()), parse=parse_ravdess),
    "crema_d": Adapter(canonical_order(CREMA_D_EMOTIONS.values()), parse=parse_crema_d),
    "tess": Adapter(canonical_order(TESS_EMOTIONS.values()), parse=parse_tess),
    "savee": Adapter(canonical_order(SAVEE_EMOTIONS.values()), parse=parse_savee),
    "esd": Adapter(canonical_order(ESD_BLOCKS), parse=parse_esd),
    "iemocap": Adapter(canonical_order(IEMOCAP_EMOTIONS.values()), read=read_iemocap),
}
EMBEDDED = "synthetic"  # the generated corpus (finser.data.synthetic): every canonical emotion


def corpus_emotions(names: Sequence[str]) -> tuple[str, ...]:
    """The label set of a dataset of these corpora: the union of what each declares, in canonical order (the
    union of the study's four, and the embedded corpus, keep all eight)."""
    declarations = {name: adapter.emotions for name, adapter in CORPORA.items()} | {EMBEDDED: EMOTIONS}
    unknown = [name for name in names if name not in declarations]
    if unknown:
        raise FinserError(f"unknown corpus {unknown}: choose from {sorted(declarations)}")
    return canonical_order(emotion for name in names for emotion in declarations[name])


def validate(path: Path, min_samples: int = MIN_SAMPLES) -> str | None:
    """Why a file cannot be a clip (decoded at its own rate: cheap), or None when it is usable; a file that is cut
    into clips checks its length per cut (``min_samples=0``)."""
    try:
        samples, native_rate = read_native(path)
    except AudioError as error:
        return str(error).removeprefix(f"{path}: ")
    if not np.isfinite(samples).all():
        return "contains NaN or inf samples"
    resampled = samples.size * SAMPLE_RATE / native_rate
    if resampled < min_samples:
        return f"{samples.size / native_rate:.3f} s is shorter than one {MIN_SAMPLES}-sample window at {SAMPLE_RATE} Hz"
    return None


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
    """Every .wav under root (any case), least nested first, so the canonical copy of a duplicate comes first; and
    every .txt (label side files).

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
            elif path.suffix.lower() == ".txt":
                listing.side_files.append(path)
    listing.files.sort(key=lambda path: (len(path.parts), str(path)))
    listing.side_files.sort()
    return listing


def parse(path: Path, names: Sequence[str]) -> tuple[str, Parsed]:
    """The first selected corpus whose naming the file follows; LabelError says why none does."""
    for name in names:
        parsed = CORPORA[name].parse(path)
        if parsed is not None:
            return name, parsed
    others = [name for name, adapter in CORPORA.items() if adapter.parse and name not in names and adapter.parse(path)]
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
    claimed: set[Path] = set()
    for name in names:
        reader = CORPORA[name].read
        if reader is not None:
            found = reader(listing)
            index.clips += found.clips
            index.skipped += found.skipped
            index.excluded[name] = dict(sorted(found.excluded.items()))
            claimed |= found.claimed
    parsers = [name for name in names if CORPORA[name].parse is not None]
    seen: dict[tuple[str, str], Path] = {}
    for path in listing.files:
        if path in claimed:
            continue
        try:
            corpus, parsed = parse(path, parsers)
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
    listing = audio_files(root)
    for path in listing.files + listing.side_files:
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
                "excluded": index.excluded,
            }
            temporary = cached.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(rows))
            temporary.replace(cached)
    clips, skipped = [Clip(**row) for row in rows["clips"]], [Skipped(**row) for row in rows["skipped"]]
    return Index(clips, skipped, rows.get("excluded", {}))


SKIP_KINDS = (  # reason fragment → short kind, for the summary line
    ("permission denied", "permission denied"),
    ("folder not readable", "unreadable folder"),
    ("symbolic link", "broken or looping link"),
    ("same folder as", "linked folder seen twice"),
    ("not a regular file", "not a regular file"),
    ("duplicate of", "duplicate"),
    ("git-lfs", "git-lfs pointer"),
    ("which this dataset", "other corpus"),
    ("IEMOCAP sentence wav", "IEMOCAP sentence copy"),
    ("without its", "label file or wav missing"),
    ("unparseable utterance", "unparseable label line"),
    ("segment", "segment outside its wav"),
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


QUIET_KINDS = ("other corpus", "IEMOCAP sentence copy")  # expected beside the chosen corpora: logged at INFO


def summarise_excluded(corpus: str, counts: dict[str, int]) -> str:
    """One line for the utterances a corpus's protocol leaves out, e.g. ``12 utterances (7 × fru, 5 × xxx): ...``."""
    kept = ", ".join(CORPORA[corpus].emotions)
    labels = ", ".join(f"{count} × {label}" for label, count in sorted(counts.items(), key=lambda item: -item[1]))
    return f"{sum(counts.values())} utterances ({labels}) whose labels are outside its emotions ({kept})"


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
        level = logging.INFO if skip_kind(entry.reason) in QUIET_KINDS else logging.WARNING
        log.log(level, "skipped %s: %s", entry.path, entry.reason)
    if index.skipped:
        log.warning("skipped %d paths: %s", len(index.skipped), summarise_skipped(index.skipped))
    for corpus, counts in index.excluded.items():
        if counts:
            log.info("%s: left out %s", corpus, summarise_excluded(corpus, counts))
    if not index.clips:
        raise FinserError(no_clips_message(root, names, index))
    log.info("indexed %d clips of %s under %s", len(index.clips), "+".join(names), root)
    return index.clips


def manifest_clips(manifest: Path) -> list[Clip]:
    """A prepared manifest's clips, whose files must all be there: a moved corpus fails now, not mid-run."""
    clips = read_manifest(manifest)
    missing = [clip.path for clip in clips if not Path(split_segment(clip.path)[0]).is_file()]
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

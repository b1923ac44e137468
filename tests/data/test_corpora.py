"""Corpus adapters on trees in each corpus's true layout: labels from file names, quirks, and bad files."""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from finser.data import layouts
from finser.data.audio import SAMPLE_RATE, AudioSpec
from finser.data.augment import render
from finser.data.cache import DecodedCache
from finser.data.corpora import (
    IEMOCAP_EMOTIONS,
    IEMOCAP_SESSIONS,
    corpus_emotions,
    esd_official_split,
    index_corpora,
    scan,
    summarise_skipped,
)
from finser.data.labels import EMOTIONS, write_manifest
from finser.errors import FinserError

from .conftest import tone, write_lfs_pointer, write_tree, write_wav


def emotions_of(clips) -> Counter:
    return Counter(clip.emotion for clip in clips)


def test_ravdess_counts_each_duplicated_file_once(trees: Path) -> None:
    index = scan(trees / "ravdess", ["ravdess"])
    assert len(index.clips) == 4 * 15  # 4 actors × (neutral 1 + 7 emotions × 2 intensities)
    assert emotions_of(index.clips) == {"neutral": 4, **{e: 8 for e in ("calm", "happy", "sad", "angry", "fear")}} | {
        "disgust": 8,
        "surprise": 8,
    }
    assert {clip.speaker for clip in index.clips} == {"01", "02", "03", "04"}
    duplicates = [entry for entry in index.skipped if "duplicate of" in entry.reason]
    assert len(duplicates) == 2 * 15 and all("audio_speech_actors_01-24" in entry.path for entry in duplicates)


def test_crema_d_level_x_kept_and_lfs_pointer_reported(trees: Path) -> None:
    index = scan(trees / "crema_d", ["crema_d"])
    assert len(index.clips) == 3 * (16 + 6)  # IEO: 5 emotions × 3 levels + neutral; DFA: 6 emotions
    assert any(clip.path.endswith("1001_DFA_ANG_X.wav") and clip.emotion == "angry" for clip in index.clips)
    assert emotions_of(index.clips)["neutral"] == 6 and "calm" not in emotions_of(index.clips)
    (pointer,) = index.skipped
    assert pointer.path.endswith("1003_ITS_HAP_XX.wav") and "git-lfs pointer" in pointer.reason


def test_tess_mixed_case_nested_folders_and_96k_file(trees: Path) -> None:
    index = scan(trees / "tess", ["tess"])
    assert len(index.clips) == 2 * 7 * 2 and not index.skipped
    assert {clip.speaker for clip in index.clips} == {"OAF", "YAF"}
    assert emotions_of(index.clips) == {
        e: 4 for e in ("angry", "disgust", "fear", "happy", "neutral", "surprise", "sad")
    }


@pytest.mark.parametrize("copy", ["savee", "savee_original"])
def test_savee_kaggle_and_original_layouts(trees: Path, copy: str) -> None:
    index = scan(trees / copy, ["savee"])
    assert len(index.clips) == 4 * 8 and not index.skipped
    assert {clip.speaker for clip in index.clips} == {"DC", "JE", "JK", "KL"}
    assert emotions_of(index.clips)["neutral"] == 8 and emotions_of(index.clips)["sad"] == 4  # "sa" before "a"


def test_savee_both_copies_in_one_root_are_deduplicated(trees: Path, tmp_path: Path) -> None:
    index = scan(trees, ["savee"])
    assert len(index.clips) == 32
    assert sum("duplicate of" in entry.reason for entry in index.skipped) == 32


def test_esd_with_and_without_split_folders_english_only(trees: Path) -> None:
    index = scan(trees / "esd", ["esd"])
    assert len(index.clips) == 3 * 5 * 2
    assert {clip.speaker for clip in index.clips} == {"0011", "0012", "0013"}
    assert emotions_of(index.clips) == {e: 6 for e in ("neutral", "angry", "happy", "sad", "surprise")}
    assert all("Mandarin" in entry.reason for entry in index.skipped) and len(index.skipped) == 5


def test_esd_official_split_blocks() -> None:
    assert [esd_official_split(f"x/0011_{n:06d}.wav") for n in (351, 370, 371, 400, 401, 700)] == [
        "val",
        "val",
        "test",
        "test",
        "train",
        "train",
    ]


def test_combined_finds_each_corpus_by_file_names(trees: Path, tmp_path: Path) -> None:
    clips = index_corpora(["ravdess", "crema_d", "tess", "savee"], trees, cache_dir=tmp_path)
    assert Counter(clip.corpus for clip in clips) == {"ravdess": 60, "crema_d": 66, "tess": 28, "savee": 32}
    again = index_corpora(["ravdess", "crema_d", "tess", "savee"], trees, cache_dir=tmp_path)
    assert again == clips and len(list((tmp_path / "index").glob("*.json"))) == 1  # reused, not re-validated


def test_bad_files_are_skipped_with_their_reason_and_odd_formats_kept(tmp_path: Path) -> None:
    folder = tmp_path / "Actor_01"
    name = "03-01-{:02d}-01-01-{:02d}-01.wav"
    kept = {
        write_wav(folder / name.format(2, 1), np.stack([tone(0.5, 48_000), tone(0.5, 48_000)], axis=1), 48_000),
        write_wav(folder / name.format(2, 2), tone(0.5, 11_025), 11_025, "PCM_U8"),
        write_wav(folder / name.format(3, 1), tone(0.5, 44_100), 44_100, "FLOAT"),
        write_wav(folder / name.format(3, 2), np.zeros(24_000, np.float32), 48_000),  # silence is a clip
    }
    nan, inf = tone(0.5, 16_000, 300), tone(0.5, 16_000, 300)
    nan[100], inf[200] = np.nan, np.inf
    bad = {
        name.format(4, 1): "empty file",
        name.format(4, 2): "not readable as audio",
        name.format(5, 1): "not readable as audio",
        name.format(5, 2): "shorter than one 2048-sample window",
        name.format(6, 1): "NaN or inf",
        name.format(6, 2): "NaN or inf",
        name.format(7, 1): "git-lfs pointer",
    }
    (folder / name.format(4, 1)).write_bytes(b"")
    (folder / name.format(4, 2)).write_bytes((folder / name.format(2, 1)).read_bytes()[:20])  # truncated header
    (folder / name.format(5, 1)).write_text("this is not audio\n" * 20)
    write_wav(folder / name.format(5, 2), tone(0.02, 48_000), 48_000)
    write_wav(folder / name.format(6, 1), nan, 16_000, "FLOAT")
    write_wav(folder / name.format(6, 2), inf, 16_000, "FLOAT")
    write_lfs_pointer(folder / name.format(7, 1))
    index = scan(tmp_path, ["ravdess"])
    assert {Path(clip.path) for clip in index.clips} == kept
    reasons = {Path(entry.path).name: entry.reason for entry in index.skipped}
    assert reasons.keys() == bad.keys()
    for file, fragment in bad.items():
        assert fragment in reasons[file], (file, reasons[file])


def test_unknown_emotion_code_and_foreign_names_are_reported(tmp_path: Path) -> None:
    write_wav(tmp_path / "03-01-09-01-01-01-01.wav", tone(0.5, 48_000), 48_000)
    write_wav(tmp_path / "03-02-03-01-01-01-01.wav", tone(0.5, 48_000), 48_000)  # song
    write_wav(tmp_path / "readme.wav", tone(0.5, 48_000), 48_000)
    reasons = {Path(entry.path).stem: entry.reason for entry in scan(tmp_path, ["ravdess"]).skipped}
    assert "unknown RAVDESS emotion code '09'" in reasons["03-01-09-01-01-01-01"]
    assert "audio-only speech" in reasons["03-02-03-01-01-01-01"]
    assert "matches no ravdess naming" in reasons["readme"]


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FinserError, match=r"dataset.root '.*nowhere' does not exist.*docs/corpora.md"):
        index_corpora(["ravdess"], tmp_path / "nowhere")


def test_root_of_lfs_pointers_says_git_lfs(tmp_path: Path) -> None:
    for name in ("1001_DFA_ANG_XX", "1001_DFA_SAD_XX"):
        write_lfs_pointer(tmp_path / "AudioWAV" / f"{name}.wav")
    with pytest.raises(FinserError, match=r"no usable crema_d clip.*2 are git-lfs pointer files.*git lfs pull"):
        index_corpora(["crema_d"], tmp_path)


def test_write_tree_layout_matches_the_documented_layouts(tmp_path: Path) -> None:
    folder = write_tree(tmp_path, "tess")
    assert (folder / "TESS Toronto emotional speech set data/TESS Toronto emotional speech set data/OAF_Fear").is_dir()


def write_actors(root: Path, actors: range) -> Path:
    """RAVDESS as downloaded: ``Audio_Speech_Actors_01-24/Actor_XX/`` with 15 short clips per actor."""
    layouts.write_files(root, layouts.ravdess_files(actors, takes=1), seconds=0.3)
    return root / "Audio_Speech_Actors_01-24"


def skip_reasons(root: Path, index) -> dict[str, str]:
    return {Path(entry.path).relative_to(root).as_posix(): entry.reason for entry in index.skipped}


def test_linked_folders_are_followed_once_and_bad_links_reported(tmp_path: Path) -> None:
    store, root = write_actors(tmp_path / "store", range(1, 3)), tmp_path / "ravdess"
    root.mkdir()
    (root / "Actor_01").symlink_to(store / "Actor_01", target_is_directory=True)
    (root / "Actor_02").symlink_to(store / "Actor_02", target_is_directory=True)
    (store / "Actor_02" / "up").symlink_to(root, target_is_directory=True)  # a loop: ravdess/Actor_02/up/Actor_02/...
    (root / "again").symlink_to(store / "Actor_01", target_is_directory=True)
    (root / "03-01-02-01-01-01-03.wav").symlink_to(tmp_path / "moved.wav")
    index = scan(root, ["ravdess"])
    assert len(index.clips) == 2 * 15 and {clip.speaker for clip in index.clips} == {"01", "02"}
    assert skip_reasons(root, index) == {
        "Actor_02/up": f"symbolic link loop: leads back to {root}",
        "again": f"same folder as {root / 'Actor_01'}, already scanned",
        "03-01-02-01-01-01-03.wav": f"broken symbolic link: {tmp_path / 'moved.wav'} does not exist",
    }
    assert summarise_skipped(index.skipped) == "2 × broken or looping link, 1 × linked folder seen twice"


def test_unreadable_folders_and_files_are_skipped_as_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actors = write_actors(tmp_path, range(1, 3))  # chmod 000 does not stop root (as in CI): deny the calls instead
    locked_folder, locked_file = actors / "Actor_02", actors / "Actor_01" / "03-01-03-01-01-01-01.wav"
    scandir, os_open = os.scandir, os.open

    def denying_scandir(path: str | os.PathLike = ".") -> object:
        if Path(path) == locked_folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    def denying_open(path: str | os.PathLike, *args: object, **kwargs: object) -> int:
        if Path(path) == locked_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return os_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", denying_scandir)
    monkeypatch.setattr(os, "open", denying_open)
    index = scan(tmp_path, ["ravdess"])
    assert len(index.clips) == 14
    assert skip_reasons(actors, index) == {
        "Actor_02": "permission denied: folder not readable",
        "Actor_01/03-01-03-01-01-01-01.wav": "permission denied: file not readable",
    }
    assert summarise_skipped(index.skipped) == "2 × permission denied"


def test_a_manifest_reads_paths_relative_to_its_folder_and_refuses_missing_files(tmp_path: Path) -> None:
    name = "Actor_01/03-01-02-01-01-01-01.wav"
    write_wav(tmp_path / "corpus" / name, tone(0.5, 48_000), 48_000)
    manifest = tmp_path / "corpus" / "ravdess.csv"
    manifest.write_text(f"path,corpus,speaker,emotion,split\n{name},ravdess,01,calm,\n")
    (clip,) = index_corpora(["ravdess"], None, manifest=str(manifest))
    assert clip.path == str(tmp_path / "corpus" / name) and clip.emotion == "calm"
    with manifest.open("a") as handle:
        handle.write("Actor_02/03-01-02-01-01-01-02.wav,ravdess,02,calm,\n")
    with pytest.raises(FinserError, match=r"1 of 2 files do not exist, e\.g\. \S+Actor_02/03-01-02.*prepare_corpora"):
        index_corpora(["ravdess"], None, manifest=str(manifest))
    with pytest.raises(FinserError, match=r"manifest \S+nowhere\.csv does not exist.*prepare_corpora"):
        index_corpora(["ravdess"], None, manifest=str(tmp_path / "nowhere.csv"))


def test_corpora_declare_their_emotions_and_a_union_keeps_the_canonical_order() -> None:
    assert corpus_emotions(["ravdess", "crema_d", "tess", "savee"]) == EMOTIONS
    assert corpus_emotions(["synthetic"]) == EMOTIONS
    assert corpus_emotions(["iemocap"]) == ("neutral", "happy", "sad", "angry")
    assert corpus_emotions(["crema_d"]) == ("neutral", "happy", "sad", "angry", "fear", "disgust")
    assert corpus_emotions(["iemocap", "esd"]) == ("neutral", "happy", "sad", "angry", "surprise")
    with pytest.raises(FinserError, match=r"unknown corpus \['msp'\]"):
        corpus_emotions(["msp"])


def iemocap_tree(root: Path) -> dict:
    return layouts.write_iemocap(root, layouts.iemocap_dialogs(sessions=5, per_session=2))


def test_iemocap_cuts_each_labelled_utterance_from_its_dialog_in_four_classes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written = iemocap_tree(tmp_path)
    sentence = tmp_path / "IEMOCAP_full_release/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    write_wav(sentence, tone(0.6, 16_000), 16_000)  # the per-sentence copy: the dialog's cut is the clip
    with caplog.at_level("INFO"):
        clips = index_corpora(["iemocap"], tmp_path)
    kept = {code: IEMOCAP_EMOTIONS[code] for code in IEMOCAP_EMOTIONS}
    expected = [
        (f"{tmp_path / dialog.wav}#t={utterance.start:g},{utterance.end:g}", dialog.session, kept[utterance.label])
        for dialog, utterances in written.items()
        for utterance in utterances
        if utterance.label in kept
    ]
    assert sorted((clip.path, clip.speaker, clip.emotion) for clip in clips) == sorted(expected)
    assert {clip.corpus for clip in clips} == {"iemocap"} and {clip.speaker for clip in clips} == set(IEMOCAP_SESSIONS)
    assert emotions_of(clips) == {"neutral": 10, "happy": 20, "sad": 10, "angry": 10}  # hap and exc merged
    left_out = [record for record in caplog.records if "left out" in record.getMessage()]
    (line,) = left_out  # one summary line, not one per utterance
    assert "60 utterances" in line.getMessage() and "10 × fru" in line.getMessage() and "10 × xxx" in line.getMessage()
    assert not [record for record in caplog.records if record.levelname == "WARNING" and "fru" in record.getMessage()]


def test_an_iemocap_cut_is_the_segment_of_its_dialog_resampled(tmp_path: Path) -> None:
    written = iemocap_tree(tmp_path)
    dialog, utterances = next(iter(written.items()))
    first, second = (f"{tmp_path / dialog.wav}#t={u.start:g},{u.end:g}" for u in utterances[:2])
    samples, rate = soundfile.read(tmp_path / dialog.wav, dtype="float32")
    start, end = round(utterances[0].start * rate), round(utterances[0].end * rate)
    expected = soxr.resample(samples[start:end].mean(axis=1), rate, SAMPLE_RATE, quality="HQ")
    np.testing.assert_allclose(render(first, AudioSpec()), expected, atol=1e-6)
    cache = DecodedCache(tmp_path / "cache", AudioSpec(), workers=1)
    assert cache.ensure([first, second]) == {}
    assert cache.key(first) != cache.key(second)  # two cuts of one wav: two entries
    np.testing.assert_allclose(cache.signal(first), expected, atol=1e-6)
    assert not np.allclose(cache.signal(second)[: expected.size], expected)


def test_iemocap_bad_side_files_are_skipped_with_path_and_reason(tmp_path: Path) -> None:
    iemocap_tree(tmp_path)
    evaluation = tmp_path / "IEMOCAP_full_release/Session1/dialog/EmoEvaluation"
    labels = evaluation / "Ses01F_impro01.txt"
    lines = labels.read_text().splitlines()
    lines[2] = "[0.3000 - oops]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]"  # unparseable
    lines[7] = "[1.2000 - 99.0000]\tSes01F_impro01_M001\thap\t[2.5, 2.5, 2.5]"  # past the end of the wav
    labels.write_text("\n".join(lines))
    (tmp_path / "IEMOCAP_full_release/Session2/dialog/wav/Ses02F_impro01.wav").unlink()  # a label file alone
    (tmp_path / "IEMOCAP_full_release/Session3/dialog/EmoEvaluation/Ses03F_impro01.txt").unlink()  # a wav alone
    (tmp_path / "IEMOCAP_full_release/Session4/dialog/wav/Ses04F_impro01.wav").write_text("not audio")
    index = scan(tmp_path, ["iemocap"])
    reasons = {entry.path.removeprefix(str(tmp_path / "IEMOCAP_full_release")): entry.reason for entry in index.skipped}
    assert reasons.keys() == {
        "/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:3",
        "/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:8",
        "/Session2/dialog/EmoEvaluation/Ses02F_impro01.txt",
        "/Session3/dialog/wav/Ses03F_impro01.wav",
        "/Session4/dialog/wav/Ses04F_impro01.wav",
    }
    assert "unparseable utterance line" in reasons["/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:3"]
    assert "ends past the end of" in reasons["/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:8"]
    assert "without its dialog wav" in reasons["/Session2/dialog/EmoEvaluation/Ses02F_impro01.txt"]
    assert "without its label file" in reasons["/Session3/dialog/wav/Ses03F_impro01.wav"]
    assert "not readable as audio" in reasons["/Session4/dialog/wav/Ses04F_impro01.wav"]
    assert len(index.clips) == 50 - 2 - 3 * 5  # 2 bad lines, 3 dialogs of 5 kept utterances each lost


def test_a_manifest_of_cuts_reads_back_and_checks_the_dialog_files(tmp_path: Path) -> None:
    iemocap_tree(tmp_path)
    clips = scan(tmp_path, ["iemocap"]).clips
    write_manifest(clips, tmp_path / "iemocap.csv")
    assert index_corpora(["iemocap"], None, manifest=str(tmp_path / "iemocap.csv")) == clips
    (tmp_path / "IEMOCAP_full_release/Session5/dialog/wav/Ses05F_impro01.wav").unlink()
    with pytest.raises(FinserError, match=r"5 of 50 files do not exist, e\.g\. .*Ses05F_impro01\.wav#t="):
        index_corpora(["iemocap"], None, manifest=str(tmp_path / "iemocap.csv"))

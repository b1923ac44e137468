"""Safe writes: an output never replaces an input, nor a file finser did not write unless told, and appears whole."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from finser.errors import FinserError


def same_file(first: Path, second: Path) -> bool:
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def check_output(
    path: str | Path,
    key: str,
    inputs: Iterable[Path] = (),
    ours: Callable[[Path], bool] = lambda path: False,
    overwrite: bool = False,
) -> Path:
    """``path`` checked as the target of option ``key``: never one of ``inputs``; an existing file only when
    ``ours`` recognises it as a file finser wrote, or with ``overwrite=true``."""
    path = Path(path)
    for source in inputs:
        if same_file(path, source):
            raise FinserError(f"cannot write {key}={path}: it is an input of this command ({source}): pick another")
    if path.is_dir():
        raise FinserError(f"cannot write {key}={path}: it is a folder: give a file name, e.g. {path / 'out.csv'}")
    if path.exists() and not overwrite and not ours(path):
        raise FinserError(
            f"cannot write {key}={path}: it exists and is not a file this command wrote: choose another path, or add "
            "overwrite=true to replace it"
        )
    return path


def check_no_file_above(path: Path, key: str, candidates: Iterable[Path]) -> None:
    """The first of ``candidates`` (``path``'s folders, nearest first) that exists must be a folder: a file there
    could never hold ``path``."""
    blocking = next((candidate for candidate in candidates if candidate.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise FinserError(f"cannot write {key}={path}: {blocking} is a file, not a folder: choose another path")


def first_line_is(title: str) -> Callable[[Path], bool]:
    """Recognises a Markdown file finser wrote by its first line."""

    def ours(path: Path) -> bool:
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                return handle.readline().rstrip("\n") == title
        except OSError:
            return False

    return ours


def check_output_folder(
    folder: str | Path, key: str, names: Iterable[str], ours: Callable[[Path], bool], overwrite: bool = False
) -> Path:
    """``folder`` checked as where option ``key`` writes the files ``names`` (its main file first): a folder or a
    path that can become one, whose files of those names are replaced only when its main file is one finser wrote
    (``ours``), or with ``overwrite``."""
    folder = Path(folder)
    check_no_file_above(folder, key, (folder, *folder.parents))
    names = list(names)
    existing = [folder / name for name in names if (folder / name).exists()]
    if existing and not overwrite and not ours(folder / names[0]):
        raise FinserError(
            f"cannot write {key}={folder}: {existing[0]} exists and this command did not write it: choose another "
            "folder, or add overwrite=true to replace it"
        )
    return folder


@contextmanager
def atomic_text(path: str | Path, keep_partial: bool = False) -> Iterator[TextIO]:
    """A text file written under a temporary name in the same folder and renamed over ``path`` when the block ends
    without error, so ``path`` is whole or untouched. On error the temporary is removed, or kept with
    ``keep_partial`` (as ``.<name>.partial``: the rows written so far)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here is the caller's to phrase (it knows the key)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            yield handle
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if not keep_partial and os.path.exists(temporary):
            os.unlink(temporary)
        raise

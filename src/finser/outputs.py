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

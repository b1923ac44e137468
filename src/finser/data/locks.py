"""Files that processes share in a cache folder (runs of one multirun, or two users' jobs): an exclusive lock, the
temporaries a killed writer leaves behind, and index files read back without trusting them."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold ``flock`` on ``path``: a lock file (created if missing), or a folder itself, which adds no file to it.

    The OS releases the lock when its holder dies, so none goes stale.
    """
    flags = os.O_RDONLY if Path(path).is_dir() else os.O_RDWR | os.O_CREAT
    descriptor = os.open(path, flags, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def remove_stale_temporaries(folder: Path, pattern: str) -> None:
    """Delete the temporaries (a shard's is up to 256 MB) of writers killed mid-write. Call it only while holding
    the lock every writer of ``folder`` holds: then no live writer owns one."""
    for temporary in folder.glob(pattern):
        log.warning("removing %s, left by a writer that was killed", temporary)
        temporary.unlink(missing_ok=True)


def read_json(path: Path, consequence: str) -> dict | None:
    """The JSON in ``path``, or None when it is missing or damaged. Writers rename a whole file into place, but a
    disk error or a hand edit can still truncate one: that is warned about (naming ``consequence``), never raised."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        log.warning("%s is damaged (%s): %s", path, error, consequence)
        return None

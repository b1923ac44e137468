"""An exclusive lock between processes that share a folder (runs of one multirun, or two users' jobs)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing); the OS releases it if the holder dies, so none goes stale."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

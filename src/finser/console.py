"""What a person watching a run sees: log lines on stderr, and progress of long loops on a terminal or in a log.

Light on purpose (logging, sys, time; rich only inside :func:`track`): Hydra imports this module to configure
logging, before a wrong config key has been reported.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

Item = TypeVar("Item")


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is written (as the stdlib's last-resort handler).

    A rich progress bar redirects stderr while it is drawn: a line logged meanwhile is then printed above the bar
    instead of being overwritten by it.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def on_terminal() -> bool:
    """Whether a person watches stderr live (a bar draws there); not in log files, nohup, joblib or SLURM jobs."""
    return sys.stderr.isatty()


def drop_library_handlers(name: str = "lightning") -> None:
    """Leave ``name``'s records to the root logger's handlers (Hydra's console and ``train.log``).

    On import, Lightning gives its ``lightning`` logger a console handler of its own, and its records also reach the
    root logger's: every Lightning line was printed twice.
    """
    if logging.getLogger().handlers:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


def track(
    items: Iterable[Item], total: int, description: str, logger: logging.Logger, interval_s: float = 10.0
) -> Iterator[Item]:
    """Yield ``items`` while showing how far the loop is: a rich bar on a terminal; otherwise a log line every
    ``interval_s`` seconds and one at the end (``description: 120/480 clips, 12.0/s, ~30 s left``)."""
    if on_terminal():
        from rich.progress import track as rich_track

        yield from rich_track(items, total=total, description=description, transient=True)
        return
    start = last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= interval_s or done == total:
            rate = done / max(now - start, 1e-9)
            logger.info("%s: %d/%d, %.1f/s, ~%.0f s left", description, done, total, rate, (total - done) / rate)
            last = now


@contextmanager
def reported_run() -> Iterator[None]:
    """What a person watching a ``train.py`` or ``eval.py`` run needs around it.

    The run dir on a line of its own at the start and at the end (where to look); a run that fails leaves its run
    dir marked by ``FAILED`` (the reason), so nobody mistakes it for one still running; a
    :class:`~finser.errors.FinserError` ends a single run with its message alone and exit code 1. Hydra would print a
    dozen traceback frames before the one line the user has to act on; ``HYDRA_FULL_ERROR=1`` keeps them, as it does
    for Hydra's own errors. In a sweep the error stays an exception, so the launcher or sweeper records that job as
    failed the way it always has.
    """
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from finser.cli import EXIT_ERROR
    from finser.errors import FinserError

    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    logger = logging.getLogger("finser")
    logger.info("run dir: %s", run_dir)
    try:
        yield
    except BaseException as error:
        (run_dir / "FAILED").write_text(f"{type(error).__name__}: {error}\n")
        if not isinstance(error, FinserError) or os.environ.get("HYDRA_FULL_ERROR") == "1" or hydra.mode != RunMode.RUN:
            raise
        logger.error("%s", error)
        raise SystemExit(EXIT_ERROR) from None
    logger.info("run dir: %s", run_dir)

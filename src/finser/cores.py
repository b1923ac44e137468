"""How many cores this process may use, and keeping the processes finser starts from oversubscribing them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a SLURM allocation, ``taskset``), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(function: Callable[[Item], Result], items: Sequence[Item], workers: int) -> Iterator[Result]:
    """``map(function, items)`` in ``workers`` processes (at most one per item), results in order as they come.

    Small chunks (about four per worker), so progress shows and the workers finish together.
    """
    workers = min(workers, len(items))
    if workers <= 1:
        yield from map(function, items)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(function, items, chunksize=max(1, min(8, len(items) // (4 * workers))))

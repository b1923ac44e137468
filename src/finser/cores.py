"""How many cores this process may use, and keeping the processes finser starts from oversubscribing them."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a SLURM allocation, ``taskset``), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """Threads each of ``processes`` processes sharing this process's cores may run without oversubscribing them."""
    return max(1, usable_cores() // max(1, processes))


def limit_threads(threads: int) -> None:
    """Cap every thread pool in this process (torch's, and OpenMP/BLAS pools through threadpoolctl) at ``threads``.

    Pools sized to the machine in each of several processes (sweep jobs, DDP ranks, cache builders) oversubscribe
    the cores: measured under load, compute_all ran ~40× slower at 2 threads than at 1.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def single_threaded() -> None:
    """A pool worker's initializer: one thread each, since the pool already runs one worker per core."""
    limit_threads(1)


def parallel_map(function: Callable[[Item], Result], items: Sequence[Item], workers: int) -> Iterator[Result]:
    """``map(function, items)`` in ``workers`` processes (at most one per item), results in order as they come.

    Small chunks (about four per worker), so progress shows and the workers finish together.
    """
    workers = min(workers, len(items))
    if workers <= 1 or multiprocessing.current_process().daemon:  # a daemonic process (a Pool's) may not have children
        yield from map(function, items)
        return
    with ProcessPoolExecutor(workers, initializer=single_threaded) as pool:
        yield from pool.map(function, items, chunksize=max(1, min(8, len(items) // (4 * workers))))

"""Processes finser starts share the cores instead of each sizing its thread pools to the whole machine."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from finser import cores
from finser.run import concurrent_processes


def threads_in_worker(_: int) -> tuple[int, int]:
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), max((pool["num_threads"] for pool in threadpool_info()), default=1)


def test_pool_workers_run_one_thread_each() -> None:
    assert set(cores.parallel_map(threads_in_worker, range(4), workers=2)) == {(1, 1)}


@pytest.mark.parametrize(("available", "processes", "threads"), [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 4, 4)])
def test_threads_per_process_divides_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch, available: int, processes: int, threads: int
) -> None:
    monkeypatch.setattr(cores, "usable_cores", lambda: available)
    assert cores.threads_per_process(processes) == threads


def test_cpu_ddp_ranks_count_as_processes_sharing_the_cores() -> None:
    assert concurrent_processes(OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 2}})) == 2
    assert concurrent_processes(OmegaConf.create({"trainer": {"accelerator": "gpu", "devices": 4}})) == 1


def test_limit_threads_caps_torch_and_blas_in_this_process() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    before, original = torch.get_num_threads(), threadpool_limits()  # limits=None: only remembers the pools
    try:
        cores.limit_threads(1)
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        torch.set_num_threads(before)
        original.restore_original_limits()

"""The training order resumes mid-epoch: a loader restored from a state continues with the batches not yet served."""

from __future__ import annotations

import itertools

import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.fabric.utilities.types import _Stateful

from finser.data.sampling import EpochSampler, ResumableLoader
from finser.errors import FinserError

N_ITEMS, BATCH = 37, 4  # 9 whole batches and a short one
SAMPLERS = {
    "shuffled": {},
    "blocks": {"block": 5},
    "balanced": {"weights": torch.linspace(0.2, 3.0, N_ITEMS)},  # UtteranceDataModule(balanced_sampling=True)
}


def loader(kind: str, seed: int = 3, **options) -> ResumableLoader:
    """A loader of the items' own indices, as the datamodules build their training loaders."""
    return ResumableLoader(list(range(N_ITEMS)), sampler=EpochSampler(N_ITEMS, seed, **SAMPLERS[kind]),
                           batch_size=BATCH, **options)  # fmt: skip


def batches(source: ResumableLoader, epoch: int, count: int | None = None) -> list[list[int]]:
    source.sampler.set_epoch(epoch)
    return [batch.tolist() for batch in itertools.islice(source, count)]


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_restored_mid_epoch_serves_the_rest_of_the_uninterrupted_epoch(kind: str, workers: int) -> None:
    """With workers the sampler is drawn batches ahead of training (prefetch): the state counts served batches."""
    whole = batches(loader(kind), epoch=2)
    interrupted = loader(kind, num_workers=workers)
    served = batches(interrupted, epoch=2, count=3)
    state = interrupted.state_dict()
    assert isinstance(interrupted, _Stateful) and state == {"seed": 3, "epoch": 2, "position": 3 * BATCH,
                                                            "n_items": N_ITEMS}  # fmt: skip
    resumed = loader(kind)
    resumed.load_state_dict(state)
    rest = batches(resumed, epoch=2)
    assert served + rest == whole and len(rest) == len(whole) - 3
    assert batches(resumed, epoch=2) == whole, "a pass that ran to its end leaves the next one whole"
    assert batches(resumed, epoch=3) != whole


def test_a_new_epoch_starts_at_its_first_item_and_the_same_epoch_keeps_its_position() -> None:
    source = loader("shuffled")
    partial = batches(source, epoch=0, count=2)
    source.sampler.set_epoch(0)
    assert source.sampler.position == 2 * BATCH
    assert partial + batches(source, epoch=0) == batches(loader("shuffled"), epoch=0)
    batches(source, epoch=0, count=2)
    assert batches(source, epoch=1) == batches(loader("shuffled"), epoch=1)


@pytest.mark.parametrize("kind", ["shuffled", "balanced"])
def test_each_rank_draws_the_share_lightnings_ddp_wrapper_would_and_resumes_it(kind: str) -> None:
    n_ranks = 3  # 37 items: the last rank's share is padded with the order's first item, as DistributedSampler pads
    single = EpochSampler(N_ITEMS, seed=3, replicas=(1, 0), **SAMPLERS[kind])
    for rank in range(n_ranks):
        own = EpochSampler(N_ITEMS, seed=3, replicas=(n_ranks, rank), **SAMPLERS[kind])
        wrapped = DistributedSamplerWrapper(single, num_replicas=n_ranks, rank=rank, shuffle=False)
        for epoch in (0, 1):
            own.set_epoch(epoch), single.set_epoch(epoch)
            assert list(own) == list(wrapped) and len(own) == len(wrapped) == 13
        own.load_state_dict({**own.state_dict(), "position": 5})
        assert list(own) == list(wrapped)[5:]


def test_a_state_of_another_seed_or_size_redraws_the_epoch_and_a_malformed_one_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = loader("shuffled")
    with caplog.at_level("WARNING"):
        source.load_state_dict({"seed": 4, "epoch": 2, "position": 8, "n_items": N_ITEMS})
    assert "drawn with seed 4" in caplog.text and "drawn again from the start" in caplog.text
    assert batches(source, epoch=2) == batches(loader("shuffled"), epoch=2)
    for state in ({"seed": 3, "epoch": 2}, {"seed": 3, "epoch": 2, "position": "8", "n_items": N_ITEMS}, [3, 2, 8]):
        with pytest.raises(FinserError, match="training sampler state"):
            source.load_state_dict(state)

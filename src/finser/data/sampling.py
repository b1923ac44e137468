"""Training orders that resume mid-epoch: a sampler whose state is (seed, epoch, position), and its DataLoader.

Lightning's fit loop saves, in every checkpoint, the ``state_dict()`` of each training DataLoader that has one (a
``_Stateful`` loader) and hands it back to ``load_state_dict`` on resume; a plain DataLoader has none, so a run
resumed mid-epoch would start that epoch's order again. :class:`ResumableLoader` is such a loader: it counts the
items it has served into its :class:`EpochSampler`, whose state is then all a resume needs to draw the rest of the
epoch exactly as an uninterrupted run would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from finser.errors import FinserError

log = logging.getLogger(__name__)

STATE_KEYS = ("seed", "epoch", "position", "n_items")


def process_group() -> tuple[int, int]:
    """(replicas, rank) of this process: torch.distributed's when a DDP run has started it, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """A shuffled order (or, with ``weights``, a draw with replacement) that depends on (seed, epoch) alone.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed with ``ckpt_path=last`` sees the very batches
    the uninterrupted run saw; torch's RandomSampler would draw from the global generator, whose state at that point
    differs after a restart. ``block`` > 1 shuffles runs of that many consecutive items instead of single ones (every
    item still once per epoch): frames served from disk then come in runs of touching frames, one read each.

    ``position`` is how many items of this epoch's order were served (the :class:`ResumableLoader` drawing from it
    counts them); iteration starts there, so a sampler restored with ``load_state_dict`` continues the epoch. Under
    DDP each rank takes its share itself, padded and interleaved as Lightning's ``DistributedSamplerWrapper`` would
    (being a ``DistributedSampler``, Lightning does not wrap it), so positions count this rank's items.
    """

    def __init__(
        self,
        n_items: int,
        seed: int,
        weights: torch.Tensor | None = None,
        block: int = 1,
        *,
        replicas: tuple[int, int] | None = None,
    ) -> None:
        """``replicas``: (number of ranks, this rank), by default torch.distributed's (``process_group``)."""
        if block < 1 or (weights is not None and block > 1):
            raise FinserError(f"EpochSampler: block must be >= 1, and 1 with weights (got {block})")
        n_ranks, rank = replicas or process_group()
        super().__init__(range(n_items), num_replicas=n_ranks, rank=rank, shuffle=False, seed=seed)
        self.n_items, self.weights, self.block, self.position = n_items, weights, block, 0

    def set_epoch(self, epoch: int) -> None:
        """A new epoch starts at its first item; the same epoch again (a resume) keeps its position."""
        if epoch != self.epoch:
            self.position = 0
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def epoch_order(self) -> list[int]:
        """This rank's share of the whole epoch's order."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights.double(), self.n_items, True, generator=generator).tolist()
        else:
            n_blocks = -(-self.n_items // self.block)
            starts = torch.randperm(n_blocks, generator=generator) * self.block
            items = (starts[:, None] + torch.arange(self.block)).flatten()
            order = items[items < self.n_items].tolist()
        while len(order) < self.total_size:  # as DistributedSampler pads: the order's start again
            order += order[: self.total_size - len(order)]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_order()[self.position :])

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "n_items": self.n_items}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the epoch a checkpoint was saved in; a checkpoint of another seed or set size starts it afresh."""
        if not isinstance(state, Mapping) or any(type(state.get(key)) is not int for key in STATE_KEYS):
            raise FinserError(f"the checkpoint's training sampler state {state!r} is not {list(STATE_KEYS)} as ints")
        self.epoch = state["epoch"]
        if (state["seed"], state["n_items"]) != (self.seed, self.n_items):
            log.warning(
                "the checkpoint's epoch %d was drawn with seed %d from %d items, this run's with seed %d from %d: "
                "its order is drawn again from the start",
                *(state[key] for key in ("epoch", "seed", "n_items")), self.seed, self.n_items,
            )  # fmt: skip
            self.position = 0
            return
        self.position = min(max(state["position"], 0), len(self))


class ResumableLoader(DataLoader):
    """The training DataLoader, stateful for Lightning: its state is its :class:`EpochSampler`'s.

    Each batch it hands out advances the sampler's position by ``batch_size`` items (Lightning fetches a sized
    loader's batches one at a time, so what was handed out is what was trained on); a pass that runs to its end
    leaves the position at 0, so iterating again draws the epoch whole.
    """

    def __init__(self, dataset: Dataset, *, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        for batch in super().__iter__():
            sampler.position = min(sampler.position + self.batch_size, len(sampler))
            yield batch
        sampler.position = 0

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state)

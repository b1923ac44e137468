"""One fine-tuned SER epoch through Lightning, timed in its own process: ``python -m benchmarks.epoch '{json}'``.

Section 8 runs it with ``finser`` imported from this checkout and from an older revision's ``src/`` (PYTHONPATH), so
only the APIs both have are used: ``SERModel``, ``FINFrontEnd``, ``Conv1dHead`` and ``SERTask``; ``optimizer`` holds
the Adam options that revision's ``conf/training/default.yaml`` sets (its default optimiser). Prints
``{"epoch_s": ...}`` (the best epoch after a warm-up one) as its last line.
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.timing import THREADS, set_threads


class Batches:
    """The same batch ``count`` times: one epoch's loader with no loading cost (a list would read as several)."""

    def __init__(self, batch: dict, count: int) -> None:
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter([self.batch] * self.count)


def main(arguments: dict) -> float:
    set_threads()
    import functools

    import lightning as L
    import numpy as np
    import torch

    from benchmarks.clips import speech_like_clips
    from finser.models.ser import Conv1dHead, FINFrontEnd, SERModel
    from finser.tasks.ser import SERTask

    torch.set_num_threads(THREADS)
    batch_size, batches = arguments["batch_size"], arguments["batches"]
    clips = speech_like_clips(batch_size, seconds=arguments["seconds"])
    waveforms = torch.from_numpy(np.stack(clips))
    batch = {
        "waveform": waveforms,
        "length": torch.full((batch_size,), waveforms.shape[-1]),
        "emotion": torch.arange(batch_size) % 8,
        "corpus": ["bench"] * batch_size,
    }
    torch.manual_seed(0)
    task = SERTask(
        SERModel(FINFrontEnd("spectral"), Conv1dHead()),
        functools.partial(torch.optim.Adam, eps=1e-7, **arguments.get("optimizer", {})),
        lr=1e-3,
        front_end_trainable=True,
        linear_probe=False,
        fin_drift=False,
    )
    loader = Batches(batch, batches)
    times: list[float] = []

    class EpochTimer(L.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            times.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, module) -> None:
            times[-1] = time.perf_counter() - times[-1]

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1 + arguments["epochs"],
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochTimer()],
    )
    trainer.fit(task, train_dataloaders=loader)
    return min(times[1:])


if __name__ == "__main__":
    print(json.dumps({"epoch_s": main(json.loads(sys.argv[1]))}))

"""An endless stream of training batches whose position (epoch, batch within it) a checkpoint stores and a resume
restores, so a resumed run sees exactly the batches the uninterrupted run would have seen."""

from __future__ import annotations


class BatchStream:
    def __init__(self, accelerator, dataloader, sampler):
        self.accelerator, self.dataloader, self.sampler = accelerator, dataloader, sampler
        self.epoch, self.position = 0, 0  # position: batches this process has taken in the current epoch
        self._iterator = None

    def state(self) -> dict:
        return {"epoch": self.epoch, "batches_in_epoch": self.position}

    def restore(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["batches_in_epoch"]
        self._iterator = None

    def _start_epoch(self):
        # Our sampler orders batches from (seed, epoch); Accelerate's loader keeps its own epoch counter, so set both.
        self.sampler.set_epoch(self.epoch)
        self.dataloader.set_epoch(self.epoch)
        if self.position:
            return iter(self.accelerator.skip_first_batches(self.dataloader, self.position))
        return iter(self.dataloader)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._iterator is None:
                self._iterator = self._start_epoch()
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
                continue
            self.position += 1
            return batch

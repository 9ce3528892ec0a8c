"""Length-aware batching under a token budget: bucketing (similar lengths per padded batch) or packing (several
conversations back to back in one row, no padding at all)."""

from __future__ import annotations

import random

from torch.utils.data import Sampler

# Bucketing sorts lengths within windows of this many batches' worth of examples, so batches stay random in order.
SORT_WINDOW_BATCHES = 50


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices. `bucket`: padded size (rows x longest) <= `max_tokens`; `pack`: summed length
    <= `max_tokens`. Reshuffled each epoch from `seed` (call `set_epoch`), identical across processes."""

    def __init__(self, lengths: list[int], max_tokens: int, mode: str, seed: int, shuffle: bool = True):
        too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
        if too_long:
            raise ValueError(f"{len(too_long)} examples are longer than trainer.max_tokens_per_batch={max_tokens} "
                             f"(longest {max(lengths)}); raise it to at least data.max_positions")
        if mode not in ("bucket", "pack"):
            raise ValueError(f"mode={mode!r}; use 'bucket' or 'pack'")
        self.lengths, self.max_tokens, self.mode, self.seed, self.shuffle = lengths, max_tokens, mode, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self, rng: random.Random) -> list[int]:
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        if self.mode == "bucket":
            mean = max(1, sum(self.lengths) // max(1, len(self.lengths)))
            window = max(1, SORT_WINDOW_BATCHES * self.max_tokens // mean)
            order = [i for start in range(0, len(order), window)
                     for i in sorted(order[start:start + window], key=self.lengths.__getitem__)]
        return order

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        batches, current, longest, total = [], [], 0, 0
        for index in self._order(rng):
            n = self.lengths[index]
            cost = max(longest, n) * (len(current) + 1) if self.mode == "bucket" else total + n
            if current and cost > self.max_tokens:
                batches.append(current)
                current, longest, total = [], 0, 0
            current.append(index)
            longest, total = max(longest, n), total + n
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


class FixedSizeBatchSampler(Sampler[list[int]]):
    """Random batches of `batch_size` rows, reshuffled per epoch from `seed` + epoch, so any epoch's order can be
    rebuilt on resume and is identical across processes."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = list(range(self.num_examples))
        random.Random(self.seed + self.epoch).shuffle(order)
        yield from (order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size))

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

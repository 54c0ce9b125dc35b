"""The sampler of one stage: TRL's own, cycled for as many passes over the stage's data as its maximum needs."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class StageSampler(Sampler[int]):
    """TRL's RepeatSampler, cycled over as many passes as a stage's maximum needs and cut there.

    Each pass reshuffles (the sampler's generator advances), like epochs over the stage's data.
    """

    def __init__(self, base: Sampler[int], num_indices: int) -> None:
        self.base = base
        self.num_indices = num_indices

    def __iter__(self) -> Iterator[int]:
        produced = 0
        while produced < self.num_indices:
            for index in self.base:
                yield index
                produced += 1
                if produced == self.num_indices:
                    return

    def __len__(self) -> int:
        return self.num_indices

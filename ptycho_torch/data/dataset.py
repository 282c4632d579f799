"""`PtychoDataset` (groups -> per-sample dicts, frames read lazily) and `ShardedEpochSampler`.

A sample is the batch table of docs/conventions.md without the batch dimension:

=============== =============== ======== ==============================================
key             shape           dtype    meaning
=============== =============== ======== ==============================================
``diffraction`` (C, N, N)       float32  measured amplitude as stored (not normalised)
``offsets``     (C, 2)          float32  (x, y) offset from the group's centre, pixels
``positions``   (C, 2)          float64  absolute (x, y) scan positions, pixels
``index``       (C,)            int64    pattern indices in the scan file
=============== =============== ======== ==============================================

The default collate stacks these into the ``[B, ...]`` batch.  ``__getitems__`` lets a
DataLoader fetch a whole batch with a single ``reader.read_frames`` call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ptycho_torch.data.grouping import Groups
from ptycho_torch.data.reader import ScanReader


class PtychoDataset(Dataset):
    """Samples of one scan: group ``i`` -> dict of tensors (see module docstring)."""

    def __init__(self, reader: ScanReader, groups: Groups) -> None:
        if len(groups) and int(groups.indices.max()) >= reader.n:
            raise ValueError(f"groups reference pattern {int(groups.indices.max())} but {reader.path} has {reader.n}")
        self.reader = reader
        self.groups = groups
        self._offsets = torch.from_numpy(groups.offsets)
        self._positions = torch.from_numpy(np.ascontiguousarray(groups.positions, dtype=np.float64))
        self._index = torch.from_numpy(groups.indices)

    def __len__(self) -> int:
        return len(self.groups)

    def _sample(self, i: int, frames: np.ndarray) -> dict[str, torch.Tensor]:
        return {"diffraction": torch.from_numpy(frames), "offsets": self._offsets[i],
                "positions": self._positions[i], "index": self._index[i]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        return self._sample(i, self.reader.read_frames(self.groups.indices[i]))

    def __getitems__(self, rows: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """A batch of samples read with one ``read_frames`` call."""
        rows = [int(r) for r in rows]
        c = self.groups.channels
        frames = self.reader.read_frames(self.groups.indices[rows].reshape(-1))
        frames = frames.reshape(len(rows), c, *frames.shape[1:])
        return [self._sample(r, np.ascontiguousarray(frames[j])) for j, r in enumerate(rows)]


class ShardedEpochSampler(Sampler[int]):
    """Per-epoch permutation of ``range(num_samples)``, sharded across ranks.

    The order is a permutation drawn from ``(seed, epoch)`` (``shuffle=True``) or the
    identity.  Like ``DistributedSampler`` every rank gets the same number of samples: the
    order is padded by wrapping around (``drop_last=False``) or truncated
    (``drop_last=True``) to a multiple of ``world_size``, and rank ``r`` takes the ``r``-th
    contiguous block.  Blocks of different ranks are disjoint (up to padding).

    ``skip(k)`` makes the *next* iteration start at this rank's ``k``-th sample (exact
    mid-epoch resume).  ``len()`` stays the full per-epoch length even then: on resume,
    Lightning's restored progress already counts the skipped batches, and the epoch ends
    when that count reaches the full length.
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False) -> None:
        super().__init__()
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.num_samples = int(num_samples)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._skip = 0
        if self.drop_last:
            self.per_rank = self.num_samples // self.world_size
        else:
            self.per_rank = math.ceil(self.num_samples / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` from the next iteration on."""
        self.epoch = int(epoch)

    def skip(self, k: int) -> None:
        """Make the next iteration skip this rank's first ``k`` samples (0 <= k <= per-rank length)."""
        if not 0 <= k <= self.per_rank:
            raise ValueError(f"skip must be in [0, {self.per_rank}], got {k}")
        self._skip = int(k)

    def rank_indices(self) -> np.ndarray:
        """This rank's full (unskipped) order for the current epoch, int64 (per_rank,)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = self.per_rank * self.world_size
        if total > order.size and order.size:
            order = np.resize(order, total)  # wrap around
        order = order[:total]
        return order[self.rank * self.per_rank:(self.rank + 1) * self.per_rank].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        indices = self.rank_indices()[self._skip:]
        self._skip = 0
        return iter(indices.tolist())

    def __len__(self) -> int:
        return self.per_rank

"""`PtychoDataModule`: scan files -> groups -> sharded DataLoaders for Lightning.

Files are opened (and the whole data contract validated) in the constructor, so a bad
file fails before a Trainer or a job exists.  Data loaders:

* ``train_dataloader()``: the training groups, shuffled per epoch by
  :class:`ShardedEpochSampler` and sharded by the attached Trainer's ``global_rank`` /
  ``world_size`` (0 / 1 without a Trainer).  Build the Trainer with
  ``use_distributed_sampler=False`` so this sampler is the one used.
* ``val_dataloader()``: the test file's groups (``val_n_groups`` of them, None = one per
  position), in order, sharded the same way (when the count is not a multiple of the world
  size, the last shard repeats a few samples so that all ranks run equally many steps).  Without a test file there is no validation
  (an empty list, which Lightning treats as "skip validation"): no training pattern is
  held out, because a physics-informed model needs no labels and every pattern helps.
* ``predict_dataloader()``: every group of the test file (one per position, in order) if
  there is one, else the training groups, in order, not shuffled and not sharded (predict
  on one device; stitching needs every patch in one place).

``subsample_seed=None`` falls back to ``seed`` so that every DDP rank builds the same groups.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from ptycho_torch.data.dataset import PtychoDataset, ShardedEpochSampler
from ptycho_torch.data.files import open_scan
from ptycho_torch.data.grouping import Groups, build_groups
from ptycho_torch.data.reader import ScanReader
from ptycho_torch.errors import ConfigError

ScanSource = str | os.PathLike[str] | ScanReader


def _open(source: ScanSource) -> ScanReader:
    return source if isinstance(source, ScanReader) else open_scan(source)


class PtychoDataModule(L.LightningDataModule):
    """Training/validation/prediction data of a PtychoPINN run, from plain values.

    The values are the configs' (the bridge's ``plan.data``), validated there; the files are
    checked here, where they are opened.

    Args:
        train_file: training scan (.npz/.h5/.hdf5 path, or an opened :class:`ScanReader`).
        test_file: optional test scan: validation and prediction data.
        gridsize: g; each sample holds C = g*g neighbouring patterns.
        n_groups: number of training groups (None = one per position); see grouping.
        neighbor_count: K nearest neighbours a group is drawn from (gridsize > 1).
        subsample_seed: seed of the group selection; None = ``seed``.
        batch_size: samples per training/validation batch, per rank.
        num_workers: DataLoader worker processes (0 = load in the main process).
        pin_memory: pin host batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (only used if num_workers > 0).
        prefetch_factor: batches prefetched per worker (only used if num_workers > 0).
        seed: seed of the per-epoch shuffle (and of grouping when subsample_seed is None).
        val_n_groups: validation groups drawn from the test file (None = one per position).
        predict_batch_size: batch size of ``predict_dataloader`` (None = ``batch_size``).
    """

    def __init__(self, train_file: ScanSource, test_file: ScanSource | None = None, *, gridsize: int = 1,
                 n_groups: int | None = None, neighbor_count: int = 4, subsample_seed: int | None = None,
                 batch_size: int = 16, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, prefetch_factor: int | None = None, seed: int = 0,
                 val_n_groups: int | None = None, predict_batch_size: int | None = None) -> None:
        super().__init__()
        self.gridsize, self.neighbor_count = gridsize, neighbor_count
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.persistent_workers, self.prefetch_factor, self.seed = persistent_workers, prefetch_factor, seed
        self.predict_batch_size = predict_batch_size or batch_size
        self.group_seed = seed if subsample_seed is None else subsample_seed
        self.train_reader = _open(train_file)
        self.test_reader = None if test_file is None else _open(test_file)
        if self.test_reader is not None and self.test_reader.frame_shape != self.train_reader.frame_shape:
            raise ConfigError("test frames differ in size from training frames", where="test_file",
                              expected=f"frame shape {self.train_reader.frame_shape}",
                              found=f"{self.test_reader.frame_shape} in {self.test_reader.path}",
                              hint="train and test scans must share the detector size N")
        self.train_groups = self._groups(self.train_reader, n_groups)
        self.val_groups = None if self.test_reader is None else self._groups(self.test_reader, val_n_groups)
        self.train_dataset = PtychoDataset(self.train_reader, self.train_groups)
        self.val_dataset = (None if self.test_reader is None or self.val_groups is None
                            else PtychoDataset(self.test_reader, self.val_groups))
        self._train_sampler: ShardedEpochSampler | None = None
        self._pending_skip = 0

    def _groups(self, reader: ScanReader, n_groups: int | None) -> Groups:
        return build_groups(reader.xcoords, reader.ycoords, gridsize=self.gridsize, n_groups=n_groups,
                            neighbor_count=self.neighbor_count, seed=self.group_seed)

    # -- facts for the model ----------------------------------------------------------
    @property
    def probe(self) -> np.ndarray:
        """(N, N) complex64 probe guess of the training file."""
        return self.train_reader.probe

    @property
    def frame_size(self) -> int:
        """N, the diffraction frame size in pixels."""
        return int(self.train_reader.frame_shape[0])

    @property
    def mean_total_intensity(self) -> float:
        """Mean over training patterns of ``sum_hw X**2`` (see ScanReader.mean_total_intensity)."""
        return self.train_reader.mean_total_intensity()

    @property
    def nphotons_from_metadata(self) -> float | None:
        """``nphotons`` recorded in the training file's ``_metadata``, or None."""
        return self.train_reader.nphotons

    @property
    def has_validation(self) -> bool:
        """True when ``val_dataloader`` yields data (a test file was given)."""
        return self.val_dataset is not None

    # -- loaders ----------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))

    def _loader(self, dataset: PtychoDataset, sampler: Any, batch_size: int) -> DataLoader:
        kwargs: dict[str, Any] = {}
        if self.num_workers > 0:
            kwargs["persistent_workers"] = self.persistent_workers
            if self.prefetch_factor is not None:
                kwargs["prefetch_factor"] = self.prefetch_factor
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, **kwargs)

    @property
    def train_sampler(self) -> ShardedEpochSampler:
        """The training sampler for the current rank/world size (kept across calls)."""
        rank, world = self._rank_world()
        s = self._train_sampler
        if s is None or (s.rank, s.world_size) != (rank, world):
            s = ShardedEpochSampler(len(self.train_dataset), shuffle=True, seed=self.seed, rank=rank,
                                    world_size=world)
            if self._pending_skip:
                s.skip(self._pending_skip)
            self._train_sampler = s
        return s

    def skip_train_samples(self, k: int) -> None:
        """Make the next training epoch skip this rank's first ``k`` samples (mid-epoch resume)."""
        self._pending_skip = int(k)
        if self._train_sampler is not None:
            self._train_sampler.skip(k)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, rank-sharded training batches (see module docstring)."""
        sampler = self.train_sampler
        self._pending_skip = 0
        return self._loader(self.train_dataset, sampler, self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        """Test-file batches in order, rank-sharded; ``[]`` without a test file."""
        if self.val_dataset is None:
            return []
        rank, world = self._rank_world()
        sampler = ShardedEpochSampler(len(self.val_dataset), shuffle=False, rank=rank, world_size=world)
        return self._loader(self.val_dataset, sampler, self.batch_size)

    def predict_dataloader(self, batch_size: int | None = None) -> DataLoader:
        """All groups in order, unsharded: the test file's (one per position) or else the training groups."""
        if self.test_reader is not None:
            dataset = PtychoDataset(self.test_reader, self._groups(self.test_reader, None))
        else:
            dataset = self.train_dataset
        sampler = ShardedEpochSampler(len(dataset), shuffle=False)
        return self._loader(dataset, sampler, batch_size or self.predict_batch_size)

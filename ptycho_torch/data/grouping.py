"""Grouping scan positions into samples of C = gridsize**2 neighbouring patterns.

* ``gridsize == 1``: every pattern is its own group (C = 1).
* ``gridsize > 1``: for each seed position, the group is the seed followed by C-1 positions
  chosen at random (seedable) among the seed's K = ``neighbor_count`` nearest *other*
  positions (K >= C; K is capped at n-1 for small scans), ordered by increasing distance.

How many groups (``n_groups``):

* ``None``: one group per position, seeds in file order (what inference wants).
* ``n_groups <= n``: ``n_groups`` distinct seeds drawn without replacement, then sorted.
* ``n_groups > n``: for gridsize 1 the count is capped at n (a log note says so); for
  gridsize > 1 seeds are drawn *with* replacement (sorted) -- a repeated seed usually gets a
  different neighbour subset, so the groups still differ.

The same ``seed`` always gives the same groups; under DDP every rank must build groups
with the same seed (``seed=None`` draws fresh entropy).  Offsets follow
docs/conventions.md: ``offsets[b, c] = positions[b, c] - positions[b].mean(0)``, (x, y).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ptycho_torch.config.canonical import patterns_per_group
from ptycho_torch.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Groups:
    """Groups of scan patterns.

    Attributes:
        indices: (n_groups, C) int64 pattern indices into the scan file.
        positions: (n_groups, C, 2) float64 absolute (x, y) positions in pixels.
        gridsize: g, with C = g * g.
    """

    indices: np.ndarray
    positions: np.ndarray
    gridsize: int

    @property
    def offsets(self) -> np.ndarray:
        """(n_groups, C, 2) float32 (x, y) offsets of each pattern from its group's centre, pixels."""
        return (self.positions - self.positions.mean(axis=1, keepdims=True)).astype(np.float32)

    @property
    def channels(self) -> int:
        """C = gridsize**2 patterns per group."""
        return patterns_per_group(self.gridsize)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def subset(self, rows: np.ndarray | slice) -> Groups:
        """The groups at ``rows`` (index array or slice), as a new :class:`Groups`."""
        return Groups(self.indices[rows], self.positions[rows], self.gridsize)


def _knn(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices (q, k) of the k nearest ``points`` to each query, nearest first."""
    _, idx = cKDTree(points).query(queries, k=k)
    return np.asarray(idx, dtype=np.int64).reshape(queries.shape[0], k)


def _check_enough_positions(gridsize: int, n: int) -> None:
    """The one check that needs the data (the configs check the values themselves)."""
    c = patterns_per_group(gridsize)
    if gridsize > 1 and n < c:
        raise ConfigError(f"gridsize {gridsize} needs at least {c} scan positions", where="gridsize",
                          found=f"{n} positions in the scan", hint="use gridsize 1 or a larger scan")


def build_groups(xcoords: np.ndarray, ycoords: np.ndarray, *, gridsize: int = 1, n_groups: int | None = None,
                 neighbor_count: int = 4, seed: int | None = None) -> Groups:
    """Group the scan positions ``(xcoords[i], ycoords[i])`` (pixels) into samples.

    The values come validated from the configs (``ModelConfig.gridsize``, ``TrainingConfig`` /
    ``InferenceConfig`` ``n_groups`` and ``neighbor_count >= C``); only the check that needs the
    scan itself (at least C positions) is made here.

    Args:
        xcoords, ycoords: (n,) scan positions in pixels.
        gridsize: g; each group has C = g*g patterns.
        n_groups: how many groups (see module docstring); None = one per position.
        neighbor_count: K, the number of nearest neighbours a group is drawn from (g > 1).
        seed: seeds the choice of seeds and neighbours (``subsample_seed``).
    Returns:
        :class:`Groups` with ``indices`` (n_groups, C) and ``positions`` (n_groups, C, 2).
    """
    pts = np.stack([np.asarray(xcoords, dtype=np.float64), np.asarray(ycoords, dtype=np.float64)], axis=1)
    n = pts.shape[0]
    _check_enough_positions(gridsize, n)
    rng = np.random.default_rng(seed)
    c = patterns_per_group(gridsize)
    if n_groups is None:
        seeds = np.arange(n, dtype=np.int64)
    elif n_groups <= n:
        seeds = np.sort(rng.choice(n, size=n_groups, replace=False)).astype(np.int64)
    elif gridsize == 1:
        log.warning("n_groups=%d exceeds the %d patterns in the scan; using all %d", n_groups, n, n)
        seeds = np.arange(n, dtype=np.int64)
    else:
        log.info("n_groups=%d exceeds the %d positions: seeds drawn with replacement", n_groups, n)
        seeds = np.sort(rng.choice(n, size=n_groups, replace=True)).astype(np.int64)
    if gridsize == 1:
        indices = seeds[:, None]
    else:
        k = min(int(neighbor_count), n - 1)
        if k < neighbor_count:
            log.info("neighbor_count=%d capped at %d (scan has %d positions)", neighbor_count, k, n)
        near = _knn(pts, pts[seeds], k + 1)
        # drop the seed itself from its neighbour list (it need not be first when positions coincide)
        not_self = near != seeds[:, None]
        order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
        neighbours = np.take_along_axis(near, order, axis=1)
        pick = np.sort(np.argsort(rng.random((seeds.size, k)), axis=1)[:, : c - 1], axis=1)
        indices = np.concatenate([seeds[:, None], np.take_along_axis(neighbours, pick, axis=1)], axis=1)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    return Groups(indices=indices, positions=pts[indices], gridsize=int(gridsize))

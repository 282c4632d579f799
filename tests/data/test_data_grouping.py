"""Grouping: gridsize 1 identity groups, K-nearest-neighbour groups, offsets, seeding, limits."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ptycho_torch.data import build_groups
from ptycho_torch.data import grouping as grouping_mod
from ptycho_torch.errors import ConfigError


def _raster(n=36, spacing=8.0, seed=0):
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    gy, gx = np.divmod(np.arange(n), side)
    return 40 + spacing * gx + rng.uniform(-0.3, 0.3, n), 40 + spacing * gy + rng.uniform(-0.3, 0.3, n)


def test_gridsize1_identity_and_subsample(caplog):
    x, y = _raster(20)
    g = build_groups(x, y, gridsize=1)
    assert g.indices.shape == (20, 1) and np.array_equal(g.indices[:, 0], np.arange(20))
    np.testing.assert_array_equal(g.positions[:, 0], np.stack([x, y], 1))
    assert np.all(g.offsets == 0) and g.offsets.dtype == np.float32
    sub = build_groups(x, y, gridsize=1, n_groups=7, seed=3)
    assert sub.indices.shape == (7, 1) and len(np.unique(sub.indices)) == 7
    assert np.all(np.diff(sub.indices[:, 0]) > 0)
    assert np.array_equal(sub.indices, build_groups(x, y, gridsize=1, n_groups=7, seed=3).indices)
    with caplog.at_level(logging.WARNING, logger="ptycho_torch.data.grouping"):
        capped = build_groups(x, y, gridsize=1, n_groups=512, seed=0)
    assert len(capped) == 20 and any("exceeds" in m for m in caplog.messages)


def test_square_of_four_points_gives_analytic_offsets():
    # 4 points on a 10 px square; gridsize 2 -> every group is the 4 corners, offsets +-5 px
    x = np.array([0.0, 10.0, 0.0, 10.0]) + 50
    y = np.array([0.0, 0.0, 10.0, 10.0]) + 50
    g = build_groups(x, y, gridsize=2, neighbor_count=4, seed=0)
    assert g.indices.shape == (4, 4)
    for row, seed in zip(g.indices, range(4)):
        assert row[0] == seed and sorted(row) == [0, 1, 2, 3]
    np.testing.assert_allclose(np.abs(g.offsets), 5.0)
    np.testing.assert_allclose(g.offsets.sum(axis=1), 0.0, atol=1e-6)
    # the seed's diagonal partner (distance 10*sqrt2) comes last: neighbours are ordered by distance
    assert all(row[3] == 3 - row[0] for row in g.indices)


@pytest.mark.parametrize("k", [4, 6])
def test_groups_are_seed_plus_members_of_its_k_nearest(k):
    x, y = _raster(36)
    pts = np.stack([x, y], 1)
    g = build_groups(x, y, gridsize=2, n_groups=30, neighbor_count=k, seed=11)
    assert g.indices.shape == (30, 4) and g.positions.shape == (30, 4, 2) and g.offsets.shape == (30, 4, 2)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    for row in g.indices:
        seed, others = row[0], row[1:]
        assert len(set(row)) == 4
        nearest = set(np.argsort(d[seed])[1:k + 1])  # K nearest others (raster jitter breaks ties)
        assert set(others) <= nearest
        assert np.all(np.diff(d[seed, others]) >= 0)
    np.testing.assert_allclose(g.offsets, g.positions - g.positions.mean(axis=1, keepdims=True), atol=1e-5)
    assert len(np.unique(g.indices[:, 0])) == 30  # distinct seeds when n_groups <= n
    again = build_groups(x, y, gridsize=2, n_groups=30, neighbor_count=k, seed=11)
    other = build_groups(x, y, gridsize=2, n_groups=30, neighbor_count=k, seed=12)
    assert np.array_equal(g.indices, again.indices) and not np.array_equal(g.indices, other.indices)


def test_more_groups_than_positions_for_gridsize2_samples_with_replacement():
    x, y = _raster(16)
    g = build_groups(x, y, gridsize=2, n_groups=100, neighbor_count=6, seed=0)
    assert len(g) == 100 and g.indices.max() < 16
    assert len({tuple(r) for r in g.indices}) > 16  # repeated seeds get different neighbour subsets


def test_knn_is_nearest_first():
    x, y = _raster(40)
    pts = np.stack([x, y], 1)
    kd = grouping_mod._knn(pts, pts[:9], 5)
    d = np.linalg.norm(pts[:9, None] - pts[None], axis=-1)
    np.testing.assert_array_equal(kd, np.argsort(d, axis=1, kind="stable")[:, :5])


def test_a_scan_smaller_than_a_group_is_a_config_error():
    # the values themselves (gridsize, n_groups, neighbor_count >= C) are the configs' to check
    # (tests/config); what needs the scan is checked here
    x, y = _raster(3)
    with pytest.raises(ConfigError, match="at least 4 scan positions") as info:
        build_groups(x, y, gridsize=2)
    assert "HINT" in info.value.one_line()

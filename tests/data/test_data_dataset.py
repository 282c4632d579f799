"""PtychoDataset samples (batch table of docs/conventions.md) and ShardedEpochSampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ptycho_torch.data import PtychoDataset, ShardedEpochSampler, build_groups, open_scan, write_scan


@pytest.fixture
def reader(tmp_path, scan_arrays):
    arrays = scan_arrays(n=25, grid=True)
    r = open_scan(write_scan(tmp_path / "s.npz", arrays))
    return r, arrays


def test_sample_keys_shapes_dtypes_and_values(reader):
    r, arrays = reader
    groups = build_groups(r.xcoords, r.ycoords, gridsize=2, n_groups=10, neighbor_count=5, seed=0)
    ds = PtychoDataset(r, groups)
    assert len(ds) == 10
    s = ds[3]
    assert set(s) == {"diffraction", "offsets", "positions", "index"}
    assert s["diffraction"].shape == (4, 64, 64) and s["diffraction"].dtype == torch.float32
    assert s["offsets"].shape == (4, 2) and s["offsets"].dtype == torch.float32
    assert s["positions"].shape == (4, 2) and s["positions"].dtype == torch.float64
    assert s["index"].shape == (4,) and s["index"].dtype == torch.int64
    idx = groups.indices[3]
    np.testing.assert_array_equal(s["index"].numpy(), idx)
    np.testing.assert_array_equal(s["diffraction"].numpy(), arrays["diffraction"][idx])
    np.testing.assert_array_equal(s["positions"][:, 0].numpy(), arrays["xcoords"][idx])
    np.testing.assert_array_equal(s["positions"][:, 1].numpy(), arrays["ycoords"][idx])
    np.testing.assert_allclose(s["offsets"].numpy(), s["positions"].numpy() - s["positions"].numpy().mean(0),
                               atol=1e-5)


def test_loader_batches_read_once_per_batch(reader):
    r, arrays = reader
    calls = []
    original = r.read_frames

    def counting(indices):
        calls.append(np.asarray(indices).copy())
        return original(indices)

    r.read_frames = counting
    groups = build_groups(r.xcoords, r.ycoords, gridsize=1)
    loader = DataLoader(PtychoDataset(r, groups), batch_size=8, sampler=ShardedEpochSampler(25, shuffle=False))
    batches = list(loader)
    assert [b["diffraction"].shape for b in batches] == [(8, 1, 64, 64)] * 3 + [(1, 1, 64, 64)]
    assert len(calls) == 4  # one read per batch (__getitems__)
    np.testing.assert_array_equal(torch.cat([b["diffraction"] for b in batches])[:, 0].numpy(),
                                  arrays["diffraction"])


@pytest.mark.parametrize("n,world,drop_last", [(24, 4, False), (25, 4, False), (25, 4, True), (7, 3, False)])
def test_shards_are_disjoint_equal_and_covering(n, world, drop_last):
    shards = []
    for rank in range(world):
        s = ShardedEpochSampler(n, shuffle=True, seed=5, rank=rank, world_size=world, drop_last=drop_last)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    assert len({len(sh) for sh in shards}) == 1
    flat = [i for sh in shards for i in sh]
    if drop_last:
        assert len(set(flat)) == len(flat) == (n // world) * world
    else:
        assert set(flat) == set(range(n))  # covering
        assert len(flat) - len(set(flat)) == (-n) % world  # only the wrap-around padding repeats
    if n % world == 0:
        assert len(set(flat)) == len(flat) == n  # strictly disjoint


def test_order_depends_on_seed_and_epoch_only():
    a, b = ShardedEpochSampler(50, seed=1), ShardedEpochSampler(50, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) and list(a) == list(a)  # reproducible, and re-iterable
    assert sorted(a) == list(range(50))
    b.set_epoch(4)
    assert list(a) != list(b)
    assert list(ShardedEpochSampler(50, seed=2)) != list(ShardedEpochSampler(50, seed=1))
    assert list(ShardedEpochSampler(10, shuffle=False)) == list(range(10))


def test_skip_yields_the_tail_once():
    s = ShardedEpochSampler(30, seed=0, rank=1, world_size=2)
    s.set_epoch(1)
    full = list(s)
    s.skip(6)
    assert len(s) == 15  # the full epoch length: Lightning's restored progress counts the skipped part
    assert list(s) == full[6:]
    assert list(s) == full and len(s) == 15  # only the next iteration skips
    s.skip(15)
    assert list(s) == []
    with pytest.raises(ValueError):
        s.skip(16)

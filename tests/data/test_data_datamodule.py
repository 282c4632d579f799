"""PtychoDataModule: validation at construction, facts, sharded loaders, workers, Lightning wiring."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from ptycho_torch.data import PtychoDataModule, open_scan, write_scan
from ptycho_torch.errors import DataContractError


@pytest.fixture
def files(tmp_path, scan_arrays):
    train = scan_arrays(n=30, grid=True, seed=1)
    test = scan_arrays(n=12, grid=True, seed=2)
    return (write_scan(tmp_path / "train.npz", train, {"nphotons": 1e6}), train,
            write_scan(tmp_path / "test.h5", test), test)


def test_bad_file_fails_at_construction(tmp_path, scan_arrays):
    arrays = scan_arrays()
    arrays["diffraction"][2, 0, 0] = np.nan
    bad = write_scan(tmp_path / "bad.npz", arrays, validate=False)
    with pytest.raises(DataContractError, match="non-finite"):
        PtychoDataModule(bad)


def test_facts_for_the_model(files):
    train_path, train, _, _ = files
    dm = PtychoDataModule(train_path, gridsize=2, n_groups=20, seed=3)
    np.testing.assert_array_equal(dm.probe, train["probeGuess"])
    assert dm.frame_size == 64 and dm.nphotons_from_metadata == 1e6
    expected = np.mean(np.sum(train["diffraction"].astype(np.float64) ** 2, axis=(1, 2)))
    assert dm.mean_total_intensity == pytest.approx(expected, rel=1e-10)
    assert len(dm.train_dataset) == 20 and dm.val_dataloader() == [] and not dm.has_validation
    # subsample_seed=None falls back to seed: same groups on every rank / every construction
    again = PtychoDataModule(train_path, gridsize=2, n_groups=20, seed=3)
    assert np.array_equal(dm.train_groups.indices, again.train_groups.indices)


def test_train_batches_and_rank_reads_only_its_shard(files):
    train_path, train, _, _ = files
    reader = open_scan(train_path)
    seen: list[int] = []
    original = reader.read_frames

    def recording(indices):
        seen.extend(np.asarray(indices).ravel().tolist())
        return original(indices)

    reader.read_frames = recording
    dm = PtychoDataModule(reader, gridsize=2, n_groups=16, neighbor_count=5, batch_size=3, seed=0)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert batches[0]["diffraction"].shape == (3, 4, 64, 64) and batches[0]["offsets"].shape == (3, 4, 2)
    assert sum(b["index"].shape[0] for b in batches) == 8
    shard_rows = loader.sampler.rank_indices()
    assert len(shard_rows) == 8
    mine = set(dm.train_groups.indices[shard_rows].ravel().tolist())
    assert set(seen) == mine  # every frame read belongs to a group of this rank's shard
    others = set(dm.train_groups.indices[np.setdiff1d(np.arange(16), shard_rows)].ravel().tolist())
    assert others - mine and not (others - mine) & set(seen)  # frames only the other rank needs: never read

@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_two_worker_loader(tmp_path, scan_arrays, suffix):
    train = scan_arrays(n=30, seed=4)
    dm = PtychoDataModule(write_scan(tmp_path / f"t{suffix}", train), batch_size=4, num_workers=2,
                          prefetch_factor=2, persistent_workers=True)
    dm.train_reader.read_frames([0])  # the parent holds an open map/handle; forked workers must re-open
    pickle.loads(pickle.dumps(dm.train_dataset))  # what spawn-started workers receive
    for epoch in range(2):
        dm.train_sampler.set_epoch(epoch)
        got = {}
        for batch in dm.train_dataloader():
            for i, frames in zip(batch["index"][:, 0].tolist(), batch["diffraction"][:, 0]):
                got[i] = frames.numpy()
        assert sorted(got) == list(range(30))
        for i, frames in got.items():
            np.testing.assert_array_equal(frames, train["diffraction"][i])


@pytest.mark.slow
def test_spawned_workers_reopen_the_file(files):
    dm = PtychoDataModule(files[2], batch_size=6)  # the HDF5 test file as training data
    loader = torch.utils.data.DataLoader(dm.train_dataset, batch_size=6, num_workers=1,
                                         multiprocessing_context="spawn")
    out = torch.cat([b["diffraction"] for b in loader])[:, 0].numpy()
    np.testing.assert_array_equal(out, files[3]["diffraction"])

def test_zero_workers_ignore_worker_only_knobs(files):
    dm = PtychoDataModule(files[0], num_workers=0, prefetch_factor=4, persistent_workers=True)
    assert len(list(dm.train_dataloader())) == 2


def test_validation_and_predict_loaders(files):
    train_path, _, test_path, test = files
    dm = PtychoDataModule(train_path, test_path, gridsize=1, n_groups=10, batch_size=5, seed=0)
    assert dm.has_validation
    val = list(dm.val_dataloader())
    assert torch.cat([b["index"] for b in val])[:, 0].tolist() == list(range(12))
    pred = list(dm.predict_dataloader(batch_size=8))
    assert [b["index"].shape[0] for b in pred] == [8, 4]
    np.testing.assert_array_equal(torch.cat([b["diffraction"] for b in pred])[:, 0].numpy(), test["diffraction"])
    only_train = PtychoDataModule(train_path, n_groups=None, predict_batch_size=7)
    assert torch.cat([b["index"] for b in only_train.predict_dataloader()])[:, 0].tolist() == list(range(30))


class _Recorder(L.LightningModule):
    """Records the pattern indices of each training batch, per epoch."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(batch["index"][:, 0].tolist())
        return (self.w * batch["diffraction"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_uses_our_sampler_and_sets_epochs(files):
    dm = PtychoDataModule(files[0], batch_size=10, seed=7)
    module = _Recorder()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm)
    assert sorted(module.seen[0]) == sorted(module.seen[1]) == list(range(30))
    assert module.seen[0] != module.seen[1]  # set_epoch reshuffled
    dm.train_sampler.set_epoch(1)
    assert module.seen[1] == list(dm.train_sampler)

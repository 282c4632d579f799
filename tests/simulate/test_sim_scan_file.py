"""SimulationConfig validation, simulate_scan contract, write_scan files (atomic, byte-stable)."""

import json
import zipfile

import numpy as np
import pytest

from ptycho_torch import __version__
from ptycho_torch.errors import ConfigError, PtychoError
from ptycho_torch.simulate import SimulationConfig, default_simulation_config, simulate_scan, write_scan
from ptycho_torch.simulate.simulate import GENERATOR_NAME

SMALL = {"object_size": 96, "N": 64, "step": 8.0, "jitter": 1.0}  # 3 x 3 raster, fast


def small(**overrides) -> SimulationConfig:
    return SimulationConfig.from_mapping({**SMALL, **overrides})


def test_default_config_is_a_small_cpu_demo():
    cfg = default_simulation_config()
    assert (cfg.object, cfg.N, cfg.probe, cfg.scan, cfg.nphotons, cfg.seed) == ("lines", 64, "disk", "raster", 1e9, 0)
    assert 192 <= cfg.object_size <= 256 and 64 / 8 <= cfg.step_px <= 64 / 4 and cfg.jitter > 0
    assert 200 <= cfg.n_positions <= 600


def test_simulate_scan_is_contract_valid():
    cfg = default_simulation_config()
    data = simulate_scan(cfg)
    n, N, M = cfg.n_positions, cfg.N, cfg.object_size
    expected = {
        "diffraction": ((n, N, N), np.float32),
        "probeGuess": ((N, N), np.complex64),
        "xcoords": ((n,), np.float64),
        "ycoords": ((n,), np.float64),
        "objectGuess": ((M, M), np.complex64),
        "scan_index": ((n,), np.int64),
    }
    assert set(data) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert data[key].shape == shape and data[key].dtype == dtype, key
    for coords in (data["xcoords"], data["ycoords"]):
        assert coords.min() >= N / 2 and coords.max() <= M - N / 2
    assert np.all(data["diffraction"] >= 0)
    total = (data["diffraction"].astype(np.float64) ** 2).sum((1, 2)).mean()
    assert total == pytest.approx(cfg.nphotons, rel=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [
        {"object": "grf", "probe": "curved"},
        {"object": "dead_leaves", "scan": "random", "n_images": 7, "step": None, "nphotons": 1e4},
        {"N": 128, "object_size": 140, "probe_diameter": 40.0},
    ],
)
def test_every_kind_simulates(overrides):
    cfg = small(**overrides)
    data = simulate_scan(cfg)
    assert data["diffraction"].shape == (cfg.n_positions, cfg.N, cfg.N)
    assert np.isfinite(data["diffraction"]).all()


def test_same_seed_gives_byte_identical_files_and_no_wall_clock(tmp_path):
    cfg = small(seed=11)
    first = write_scan(cfg, tmp_path / "a.npz").read_bytes()
    second = write_scan(cfg, tmp_path / "b.npz").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    other = write_scan(small(seed=12), tmp_path / "c.npz").read_bytes()
    assert other != first


def test_file_loads_without_pickle_and_carries_metadata(tmp_path):
    cfg = small(object="grf", nphotons=5e5, seed=4)
    path = write_scan(cfg, tmp_path / "sub" / "dir" / "scan.npz")  # parents created
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    assert set(arrays) == {"diffraction", "probeGuess", "xcoords", "ycoords", "objectGuess", "scan_index", "_metadata"}
    meta = json.loads(str(arrays["_metadata"]))
    assert meta["nphotons"] == 5e5 and meta["seed"] == 4 and meta["n_images"] == cfg.n_positions
    assert meta["simulation_config"] == cfg.model_dump(mode="json")
    assert SimulationConfig.from_mapping(meta["simulation_config"]) == cfg  # the config round-trips
    assert meta["generator"] == {"name": GENERATOR_NAME, "version": __version__}
    fresh = simulate_scan(cfg)
    for key, value in fresh.items():
        np.testing.assert_array_equal(arrays[key], value)
    assert [p.name for p in path.parent.iterdir()] == ["scan.npz"]  # no temp file left behind


def test_write_refuses_bad_paths_and_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError, match="ending in .npz"):
        write_scan(small(), tmp_path / "scan.h5")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write"):
        write_scan(small(), blocker / "scan.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    "mapping, where, text",
    [
        ({"objct": "lines"}, "objct", "did you mean 'object'"),
        ({"N": 65}, "N", "found 65"),
        ({"nphotons": 0}, "nphotons", "greater than 0"),
        ({"scan": "random"}, "n_images", "HINT"),
        ({"n_images": 10}, "n_images", "unset for scan='raster'"),
        ({"scan": "random", "n_images": 5, "step": 4.0}, "step", "HINT"),
        ({"object_size": 64}, "object_size", ">= 66"),
        ({"probe_diameter": 80.0}, "probe_diameter", "<= N"),
        ({"jitter": 100.0}, "jitter", "half-width"),
    ],
)
def test_bad_configs_are_one_line_config_errors(mapping, where, text):
    with pytest.raises(ConfigError) as info:
        SimulationConfig.from_mapping(mapping)
    line = info.value.one_line()
    assert isinstance(info.value, PtychoError) and "\n" not in line
    assert line.startswith(where) and text in line

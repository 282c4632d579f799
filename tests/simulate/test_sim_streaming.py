"""Streaming simulation: chunked write_scan gives the same bytes as before, in flat memory."""

import hashlib
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from ptycho_torch.cli.simulate import ChunkProgress
from ptycho_torch.cli.simulate import main as simulate_main
from ptycho_torch.data.npz import NpzScanReader
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_scan
from ptycho_torch.simulate.diffraction import chunk_patterns, diffraction_chunks
from ptycho_torch.simulate.npz_stream import StreamedArray, npz_bytes, write_npz
from ptycho_torch.simulate.simulate import scan_metadata

# sha256 (first 16 hex digits) of each member of files written by the whole-array writer,
# recorded before streaming was introduced (commit 36e16a1).  _metadata is left out: it
# holds the package version.
GOLDEN = {
    "default": ({}, {
        "diffraction.npy": "76c64805db208289", "probeGuess.npy": "9ec69c75d0ca52bd",
        "xcoords.npy": "15c8a6c689a1a0f4", "ycoords.npy": "7600f77483581ef0",
        "objectGuess.npy": "712a7e9b3fd3effd", "scan_index.npy": "ff8f86e7b4e71a84"}),
    "random_curved_grf": (
        {"object": "grf", "object_size": 160, "probe": "curved", "scan": "random", "n_images": 700,
         "nphotons": 1e4, "seed": 7}, {
            "diffraction.npy": "232884c042da634f", "probeGuess.npy": "be430a327a7f36e0",
            "xcoords.npy": "3b0904a7f85499a4", "ycoords.npy": "fcb335c18821ed29",
            "objectGuess.npy": "18b32e8e421f4041", "scan_index.npy": "5f9d95b882a99f04"}),
}


def _member_hashes(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: hashlib.sha256(archive.read(info.filename)).hexdigest()[:16]
                for info in archive.infolist() if info.filename != "_metadata.npy"}


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize("chunk", [None, 256, 3])
def test_streamed_file_matches_the_golden_bytes_of_the_whole_array_writer(tmp_path, name, chunk):
    overrides, expected = GOLDEN[name]
    path = write_scan(SimulationConfig(**overrides), tmp_path / "scan.npz", chunk=chunk)
    assert _member_hashes(path) == expected


def test_streamed_file_equals_the_in_memory_archive_byte_for_byte(tmp_path):
    cfg = SimulationConfig(object="dead_leaves", object_size=128, step=4.0, jitter=0.5, nphotons=1e6, seed=3)
    arrays = simulate_scan(cfg)
    arrays["_metadata"] = np.array(json.dumps(scan_metadata(cfg, cfg.n_positions), sort_keys=True))
    whole = npz_bytes(arrays)
    for chunk in (1, 100, 256):
        assert write_scan(cfg, tmp_path / f"c{chunk}.npz", chunk=chunk).read_bytes() == whole


def test_streamed_diffraction_is_memory_mapped_by_the_reader(tmp_path):
    cfg = SimulationConfig(object_size=128, scan="random", n_images=300, seed=2)
    path = write_scan(cfg, tmp_path / "scan.npz", chunk=128)
    reader = NpzScanReader(path)
    assert reader._diff_member.data_offset is not None  # stored, so mapped rather than loaded
    np.testing.assert_array_equal(reader.read_frames(np.arange(300)), simulate_scan(cfg)["diffraction"])


def test_chunks_concatenate_to_the_whole_array_draw():
    cfg = SimulationConfig(object_size=128, scan="random", n_images=50, seed=9)
    whole = simulate_scan(cfg)
    rng = np.random.default_rng(cfg.seed)
    from ptycho_torch.simulate.simulate import _draw_scene

    obj, probe, positions = _draw_scene(cfg, rng)
    stages = []
    _, chunks = diffraction_chunks(obj, probe, positions, cfg.nphotons, rng, chunk=16,
                                   on_chunk=lambda stage, done, total: stages.append((stage, done, total)))
    blocks = list(chunks)
    assert [b.shape[0] for b in blocks] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate(blocks), whole["diffraction"])
    assert stages == [(s, d, 50) for s in ("scale", "noise") for d in (16, 32, 48, 50)]


def test_default_chunk_is_a_multiple_of_the_patch_cutting_step():
    assert chunk_patterns(64) == 256 and chunk_patterns(128) == 256 and chunk_patterns(256) == 256


def test_a_stream_that_runs_short_fails_and_leaves_no_file(tmp_path):
    bad = StreamedArray((5, 2), np.dtype(np.float32), iter([np.zeros((3, 2), np.float32)]))
    with pytest.raises(ValueError, match="3 rows were produced for a declared 5"):
        write_npz(io.BytesIO(), {"diffraction": bad})
    wrong = StreamedArray((2, 2), np.dtype(np.float32), iter([np.zeros((2, 3), np.float32)]))
    with pytest.raises(ValueError, match="does not fit the declared"):
        write_npz(io.BytesIO(), {"diffraction": wrong})


def test_failed_simulation_leaves_no_partial_file(tmp_path, monkeypatch):
    import ptycho_torch.simulate.simulate as simulate_module

    def broken(*args, **kwargs):
        def chunks():
            yield np.zeros((1, 64, 64), np.float32)
            raise RuntimeError("disk on fire")
        return 1.0, chunks()

    monkeypatch.setattr(simulate_module, "diffraction_chunks", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_scan(SimulationConfig(object_size=128, scan="random", n_images=4), tmp_path / "scan.npz")
    assert list(tmp_path.iterdir()) == []


def test_simulation_peak_memory_does_not_grow_with_the_scan():
    """numpy's allocations (traced by tracemalloc): 4x the patterns, about the same peak."""
    def peak(n_images: int) -> int:
        cfg = SimulationConfig(object_size=128, scan="random", n_images=n_images, seed=1)
        tracemalloc.start()
        try:
            write_npz(_NullSink(), _members(cfg))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(512), peak(2048)
    assert large < 1.25 * small, (small, large)


class _NullSink(io.RawIOBase):
    """A seekable sink that keeps no bytes (zipfile needs tell/seek)."""

    def __init__(self):
        self.pos = 0

    def writable(self):
        return True

    def seekable(self):
        return True

    def write(self, data):
        self.pos += len(data)
        return len(data)

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos


def _members(cfg):
    from ptycho_torch.simulate.simulate import _scan_members

    return _scan_members(cfg, chunk=256)


def test_cli_prints_one_line_per_chunk_when_not_a_terminal_and_nothing_when_quiet(tmp_path, capsys):
    args = ["--scan", "random", "--n-images", "1100", "--object-size", "128"]
    assert simulate_main(["--out", str(tmp_path / "a.npz"), *args]) == 0
    lines = capsys.readouterr().err.splitlines()
    done = (256, 512, 768, 1024, 1100)  # each chunk crosses a new tenth of the 1100 patterns
    assert lines == [f"ptycho-simulate: pass 1/2 (intensity scale) {d}/1100 patterns" for d in done] + [
        f"ptycho-simulate: pass 2/2 (noise, write) {d}/1100 patterns" for d in done]
    assert simulate_main(["--out", str(tmp_path / "b.npz"), "--quiet", *args]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_progress_lines_off_a_terminal_come_at_each_tenth_of_a_long_pass():
    stream = io.StringIO()
    progress = ChunkProgress(10_000, stream, bar=False)
    for stage in ("scale", "noise"):
        for done in [*range(256, 10_000, 256), 10_000]:
            progress(stage, done, 10_000)
    lines = stream.getvalue().splitlines()
    scale = [line for line in lines if "pass 1/2" in line]
    assert len(scale) == 10 and len(lines) == 20  # 39 chunks a pass, one line per tenth
    assert scale[0].endswith(" 1024/10000 patterns") and scale[-1].endswith(" 10000/10000 patterns")


def test_progress_bar_on_a_terminal_counts_patterns():
    stream = io.StringIO()
    progress = ChunkProgress(10, stream, bar=True)
    for done in (4, 8, 10):
        progress("scale", done, 10)
    assert progress._bars["scale"].n == 10
    progress.close()
    assert "pass 1/2" in stream.getvalue()

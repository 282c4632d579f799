"""Bad scan files reach the CLIs as one readable line and exit code 2, before any training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho_torch.cli import infer as infer_cli
from ptycho_torch.cli import train as train_cli
from ptycho_torch.data import write_scan


def _valid(n: int = 12, size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "diffraction": rng.random((n, size, size)).astype(np.float32),
        "probeGuess": np.ones((size, size), np.complex64),
        "xcoords": rng.uniform(40, 80, n),
        "ycoords": rng.uniform(40, 80, n),
    }


def _missing_key(a):
    del a["probeGuess"]
    return a, "probeGuess"


def _wrong_dtype(a):
    a["diffraction"] = (a["diffraction"] * 10).astype(np.int32)
    return a, "diffraction"


def _wrong_rank(a):
    a["diffraction"] = a["diffraction"][0]
    return a, "diffraction"


def _nans(a):
    a["diffraction"][3, 5, 5] = np.nan
    return a, "diffraction"


def _coordinate_count(a):
    a["xcoords"] = a["xcoords"][:-2]
    return a, "xcoords"


def _empty(a):
    for key in ("diffraction", "xcoords", "ycoords"):
        a[key] = a[key][:0]
    return a, "xcoords"


BAD_FILES = {
    "missing key": _missing_key,
    "wrong dtype": _wrong_dtype,
    "wrong rank": _wrong_rank,
    "NaN": _nans,
    "mismatched coordinate count": _coordinate_count,
    "empty scan": _empty,
}


def _write_bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    arrays, key = BAD_FILES[case](_valid())
    path = tmp_path / "bad.npz"
    write_scan(path, arrays, {"nphotons": 1e9}, validate=False)
    return path, key


def _one_line_error(captured: str) -> str:
    lines = [line for line in captured.strip().splitlines() if line.strip()]
    assert len(lines) == 1, captured
    assert "Traceback" not in captured
    return lines[0]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_ptycho_train_refuses_bad_file(case, tmp_path, capsys):
    path, key = _write_bad(tmp_path, case)
    code = train_cli.main(["--train-data-file", str(path), "--output-dir", str(tmp_path / "run"), "--accelerator", "cpu"])
    assert code == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(path) in line and key in line and "HINT" in line
    assert not (tmp_path / "run").exists(), "nothing may be written for a bad input"


def test_ptycho_infer_refuses_bad_file(tmp_path, capsys):
    path, key = _write_bad(tmp_path, "NaN")
    bundle = tmp_path / "missing.ptpinn"
    code = infer_cli.main(["--model", str(bundle), "--data", str(path), "--out", str(tmp_path / "out")])
    assert code == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(bundle) in line


def test_missing_data_file_exits_2_from_a_real_process(tmp_path):
    missing = tmp_path / "nope.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "ptycho_torch.cli.train", "--train-data-file", str(missing), "--explain"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    line = _one_line_error(proc.stderr)
    assert str(missing) in line

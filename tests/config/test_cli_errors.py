"""ptycho-train on bad input: exit status 2 and exactly one readable line on stderr.

Runs the real entry point (``python -m ptycho_torch.cli.train``) in a subprocess; every case
fails while the config is assembled, before any training starts (each run < 1 s, except
the data-file case, which imports the data package).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ptycho_torch.errors import EXIT_BAD_INPUT


def ptycho_train(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [sys.executable, "-m", "ptycho_torch.cli.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "typo.yaml").write_text("nepochs: 2\nmodel:\n  gridsise: 2\n")
    (tmp_path / "broken.yaml").write_text("nepochs: [2\n")
    (tmp_path / "workers.yaml").write_text("execution:\n  persistent_workers: true\n")
    return tmp_path


CASES = [
    # (arguments, fragments the one line must contain)
    (["--config", "typo.yaml"], ["config error:", "typo.yaml", "unknown key 'model.gridsise'", "did you mean 'model.gridsize'", "valid names:"]),
    (["--config", "missing.yaml"], ["missing.yaml", "config file not found", "HINT:"]),
    (["--config", "broken.yaml"], ["broken.yaml", "cannot parse config file", "HINT:"]),
    (["--config", "workers.yaml"], ["persistent_workers=True needs num_workers > 0"]),
    (["--set", "nepochs"], ["config error:", "--set", "expected KEY=VALUE", "found 'nepochs'", "HINT:"]),
    (["--set", "execution.device=2"], ["unknown key 'execution.device'", "did you mean 'execution.devices'"]),
    (["--set", "nepochs=0"], ["nepochs (from override)", "greater than or equal to 1", "found 0", "HINT:"]),
    (["--set", "nepochs=0", "--nepochs", "-3"], ["nepochs (from flag)", "found -3"]),
    (["--N", "96"], ["usage error:", "--N", "invalid choice", "32, 64, 128, 256"]),
    (["--set", "model.N=96"], ["model.N (from override)", "32, 64, 128 or 256", "found 96"]),
    (["--nepochs", "2.5"], ["usage error:", "--nepochs", "invalid int value: '2.5'"]),
    (["--no-such-flag"], ["usage error:", "--no-such-flag", "unrecognized arguments", "HINT:"]),
    (["--gridsize", "2", "--neighbor-count", "3"], ["neighbor_count (3) must be >= gridsize**2 (4)"]),
    (["--accelerator", "cpu", "--precision", "16-mixed"], ["execution.precision", "needs a GPU", "HINT:"]),
    (["--set", "n_images=10", "--set", "n_groups=20"], ["'n_images' (10) and 'n_groups' (20) disagree", "HINT:"]),
    (["--train-data-file", "nowhere.npz"], ["data contract error:", "nowhere.npz", "not found", "HINT:"]),
]


@pytest.mark.parametrize("args,fragments", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_with_one_line(workdir, args, fragments):
    done = ptycho_train(*args, cwd=workdir)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    assert done.stdout == ""


def test_explain_prints_provenance_and_hash_and_exits_0(tmp_path):
    (tmp_path / "run.yaml").write_text("nepochs: 3\nexecution:\n  accelerator: cpu\n")
    done = ptycho_train("--config", "run.yaml", "--set", "batch_size=8", "--seed", "4", "--explain", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[2:] if line.strip()}
    assert rows["nepochs"] == ["3", "file:run.yaml"]
    assert rows["batch_size"] == ["8", "override"]
    assert rows["seed"] == ["4", "flag"]
    assert rows["execution.accelerator"] == ["'cpu'", "file:run.yaml"]
    assert rows["config"][:1] == ["hash:"] and len(rows["config"][1]) == 64
    assert not (tmp_path / "training_outputs").exists()  # --explain trains nothing

"""What a user sees while training and after inference, from one tiny CLI training run.

The training runs as a subprocess with stdout going to a file (as under the launcher or SLURM):
one progress line per epoch must appear there; its TensorBoard event files are read back; then
``ptycho-infer`` on the same scan must write ``report.png`` and print a short summary.
"""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from ptycho_torch.physics.loss import combined_loss
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan
from ptycho_torch.workflows import progress
from ptycho_torch.workflows.diagnostics import per_pixel_loss
from ptycho_torch.workflows.logging import read_loss_curves

NEPOCHS = 3
EPOCH_LINE = re.compile(rf"^epoch (\d+)/{NEPOCHS}  step \d+  loss \S+  \d+ samples/s  ETA \S+")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("progress")
    scan = write_scan(SimulationConfig(object_size=112, step=8.0, probe="curved", seed=2), tmp / "scan.npz")
    run = tmp / "run"
    log = tmp / "train.log"
    overrides = {"train_data_file": scan, "output_dir": run, "nepochs": NEPOCHS, "n_groups": 32, "batch_size": 8,
                 "model.n_filters_scale": 1, "execution.accelerator": "cpu", "execution.logger_backend": "tensorboard",
                 "execution.log_every_n_steps": 1, "execution.enable_progress_bar": True}
    command = [sys.executable, "-m", "ptycho_torch.cli.train", "--resume", "never"]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    with log.open("w") as handle:  # stdout is a file: no terminal, so no progress bar
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, log.read_text()[-3000:]
    return scan, run, log.read_text()


@pytest.mark.slow
def test_training_in_a_log_file_prints_one_line_per_epoch(trained_run):
    _, _, output = trained_run
    lines = [line for line in output.splitlines() if EPOCH_LINE.match(line)]
    assert [int(EPOCH_LINE.match(line).group(1)) for line in lines] == list(range(1, NEPOCHS + 1)), output[-2000:]
    assert "\r" not in output  # no progress bar redrawn into the file


@pytest.mark.slow
def test_tensorboard_holds_readable_scalars_and_snapshots(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run, _ = trained_run
    events = EventAccumulator(str(run / "metrics"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {"train_loss_step", "train_loss_per_pixel_step", "train_loss_per_pixel_epoch", "lr", "grad_norm",
                "intensity_scale", "intensity_scale_change", "snapshot/deviance_per_pixel", "snapshot/amp_ssim",
                "snapshot/phase_ssim", "snapshot/amp_frc_cutoff_cpp", "snapshot/phase_frc_cutoff_cpp"}
    assert expected <= scalars, sorted(expected - scalars)
    assert "hp_metric" not in scalars
    for tag in expected:
        values = [event.value for event in events.Scalars(tag)]
        assert values and all(math.isfinite(v) for v in values), tag
    assert [e.value for e in events.Scalars("lr")][0] == pytest.approx(1e-3)
    raw = events.Scalars("train_loss_step")[-1].value
    per_pixel = events.Scalars("train_loss_per_pixel_step")[-1].value
    assert per_pixel < raw / 1000  # the per-pixel loss is on a readable scale, far below the raw sum
    assert 0 <= events.Scalars("snapshot/amp_ssim")[-1].value <= 1
    images = set(events.Tags()["images"])
    assert {"diffraction/measured_vs_predicted", "patches/amplitude", "patches/phase", "object/amplitude",
            "object/phase"} <= images


@pytest.mark.slow
def test_inference_writes_the_report_and_a_short_summary(trained_run, tmp_path, capsys):
    from PIL import Image

    from ptycho_torch.cli import infer as infer_cli

    scan, run, _ = trained_run
    assert set(read_loss_curves(run)) == {"train_loss_per_pixel_epoch"}  # read back from the event files
    out = tmp_path / "recon"
    assert infer_cli.main(["--model", str(run / "model.ptpinn"), "--data", str(scan), "--out", str(out),
                           "--accelerator", "cpu"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) <= 15 and any(line.startswith("report figure:") for line in printed)
    with Image.open(out / "report.png") as image:
        assert image.size == (1170, 1080)  # the layout with a ground truth (see tests/evaluate/test_report.py)
    for name in ("amplitude.png", "phase.png"):
        with Image.open(out / name) as image:
            assert image.mode in ("RGB", "RGBA")


def test_per_pixel_loss_is_the_poisson_nll_per_detector_pixel():
    generator = torch.Generator().manual_seed(0)
    measured = torch.rand(3, 1, 16, 16, generator=generator) + 0.1
    predicted = torch.rand(3, 1, 16, 16, generator=generator) + 0.1
    pred_scale, measured_scale = torch.tensor(30.0), torch.tensor(25.0)
    loss = combined_loss(predicted, measured, pred_scale, measured_scale, nll_weight=2.0)
    rate = (pred_scale * predicted).square().double()
    counts = (measured_scale * measured).square().double()
    expected = (rate - counts * torch.log(rate) + torch.lgamma(counts + 1)).mean()
    cfg = {"torch_loss_mode": "poisson", "nll_weight": 2.0, "mae_weight": 0.0}
    assert float(per_pixel_loss(loss, measured, cfg)) == pytest.approx(float(expected), rel=1e-4)
    assert per_pixel_loss(loss, measured, {**cfg, "mae_weight": 0.5}) is None  # a mix has no single per-pixel meaning


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    assert progress.show_progress_bar(True, _Terminal())
    assert not progress.show_progress_bar(True, io.StringIO())
    assert not progress.show_progress_bar(False, _Terminal())


def test_track_prints_quarters_off_a_terminal_only_when_slow(monkeypatch):
    quick = io.StringIO()
    assert list(progress.track(range(8), 8, "stitch", stream=quick)) == list(range(8))
    assert quick.getvalue() == ""  # a quick loop stays quiet
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    slow = io.StringIO()
    assert list(progress.track(range(8), 8, "stitch", stream=slow)) == list(range(8))
    lines = slow.getvalue().splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == ["2/8", "4/8", "6/8", "8/8"]
    assert "\r" not in slow.getvalue()
    assert np.all([line.startswith("stitch: ") for line in lines])


def test_reporter_lines_carry_the_values_and_a_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    log = io.StringIO()
    reporter = progress.ProgressReporter(4, "refine", unit="pass", stream=log)
    for misfit in (8.0, 4.0, 2.0, 1.0):
        reporter.update(misfit=misfit)
    reporter.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("refine: 4/4 passes (100%), misfit 1,")
    terminal = _Terminal()
    bar = progress.ProgressReporter(4, "refine", unit="pass", stream=terminal)
    assert bar._bar is not None  # tqdm on a terminal
    bar.close()

"""The collapse guard: a constant output branch fails loudly, a healthy one trains on."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from ptycho_torch.errors import PtychoError, TrainingCollapseError
from ptycho_torch.workflows.guard import CollapseGuard, branch_spread


class _Module:
    """Just what the guard touches: ``generator`` (for train/eval) and ``generate``."""

    def __init__(self, phase_constant: bool) -> None:
        self.phase_constant = phase_constant
        self.generator = torch.nn.Identity()
        self.generator.forward = self._forward

    def _forward(self, x):
        g = torch.Generator().manual_seed(0)
        amp = 0.5 + 0.1 * torch.rand(x.shape, generator=g)
        phase = torch.full(x.shape, 0.3) if self.phase_constant else torch.rand(x.shape, generator=g) - 0.5
        return torch.polar(amp, phase)

    def generate(self, diffraction, offsets=None):
        return self.generator(diffraction)


def _run(guard, module, steps):
    batch = {"diffraction": torch.rand(2, 1, 32, 32)}
    for step in range(steps):
        guard.on_train_batch_end(SimpleNamespace(global_step=step), module, None, batch, step)


def test_branch_spread():
    z = torch.polar(torch.full((2, 1, 16, 16), 0.5), torch.zeros(2, 1, 16, 16))
    assert branch_spread(z) == {"amplitude": 0.0, "phase": 0.0}
    z = torch.polar(torch.rand(2, 1, 16, 16) + 0.5, torch.rand(2, 1, 16, 16))
    spread = branch_spread(z)
    assert spread["amplitude"] > 0.05 and spread["phase"] > 0.05


def test_constant_phase_raises_one_line_error_after_patience():
    guard = CollapseGuard(every_n_steps=10, start_step=20, patience=2)
    with pytest.raises(TrainingCollapseError) as err:
        _run(guard, _Module(phase_constant=True), 100)
    line = err.value.one_line()
    assert isinstance(err.value, PtychoError)
    assert line.startswith("training step 30:") and "phase" in line and "HINT" in line and "\n" not in line


def test_healthy_outputs_and_early_steps_pass():
    guard = CollapseGuard(every_n_steps=10, start_step=20, patience=2)
    _run(guard, _Module(phase_constant=False), 100)
    assert guard.last["phase"] > 1e-3 and guard.strikes == {"amplitude": 0, "phase": 0}
    early = CollapseGuard(every_n_steps=10, start_step=200)
    _run(early, _Module(phase_constant=True), 100)  # never checked before start_step
    assert early.last == {}


def test_bad_guard_arguments():
    with pytest.raises(ValueError):
        CollapseGuard(every_n_steps=0)
    with pytest.raises(ValueError):
        CollapseGuard(min_std=math.nan)


def test_training_workflow_installs_the_guard():
    from ptycho_torch.workflows import train

    assert "CollapseGuard()" in open(train.__file__).read()

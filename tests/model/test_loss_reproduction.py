"""Refactors that leave the maths alone reproduce the training loss exactly.

Three optimisation steps from a fixed seed, through the same public path the training
workflow takes (factory -> data module -> module -> optimiser), at gridsize 1 and 2.  The
recorded values were computed before the config-layer refactor of issue 11 (one schema);
any change to the physics, the network, the initialisation or the data order moves them.
One thread, so the reductions run in one order; ``rel=1e-6`` leaves room only for the
last float32 bits of a different CPU's vector unit.
"""

from __future__ import annotations

from itertools import islice

import pytest
import torch

RECORDED = {
    1: [840068608.0, 915448704.0, 476911840.0],
    2: [8164008960.0, 10398396416.0, 5853896192.0],
}


def _three_losses(tmp_path, gridsize: int) -> list[float]:
    import lightning as L

    from ptycho_torch.factory import create_training_payload
    from ptycho_torch.simulate import SimulationConfig, write_scan
    from ptycho_torch.workflows.train import build_datamodule, build_module

    scan = write_scan(SimulationConfig(probe="curved" if gridsize == 1 else "disk", object_size=96, step=8, seed=5),
                      tmp_path / "scan.npz")
    payload = create_training_payload(overrides={
        "train_data_file": str(scan), "output_dir": str(tmp_path / "run"), "batch_size": 4, "n_groups": 16,
        # the estimate's iterations as when the values were recorded (the default became 20 later)
        "model.gridsize": gridsize, "model.n_filters_scale": 1, "model.estimate_iters": 5,
        "execution.accelerator": "cpu", "execution.logger_backend": "none",
    })
    L.seed_everything(payload.plan.seed, workers=True, verbose=False)
    datamodule = build_datamodule(payload)
    datamodule.setup("fit")
    module = build_module(payload, datamodule)
    optimiser = module.configure_optimizers()
    optimiser = optimiser["optimizer"] if isinstance(optimiser, dict) else optimiser
    losses = []
    for batch in islice(iter(datamodule.train_dataloader()), 3):
        loss = module.compute_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("gridsize", [1, 2])
def test_training_loss_reproduces_the_recorded_values(tmp_path, gridsize):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses = _three_losses(tmp_path, gridsize)
    finally:
        torch.set_num_threads(threads)
    assert losses == pytest.approx(RECORDED[gridsize], rel=1e-6)

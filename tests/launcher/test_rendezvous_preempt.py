"""MASTER_PORT derivation and the preemption flag/callback (single process, CPU)."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from launcher.rendezvous import PORT_HIGH, PORT_LOW, derive_port, pick_port


def test_derived_port_is_stable_and_in_range():
    ports = {derive_port(str(j)) for j in range(1, 2000)}
    assert all(PORT_LOW <= p < PORT_HIGH for p in ports) and len(ports) == 1999
    assert derive_port("123") == derive_port("123") and PORT_LOW <= derive_port("77_3") < PORT_HIGH


def test_pick_port_skips_a_busy_port():
    job = "4242"
    with socket.socket() as busy:
        busy.bind(("", derive_port(job)))
        busy.listen()
        assert pick_port(job) == derive_port(job) + 1


def _tiny_trainer(tmp_path, callbacks, steps):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.lin(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=4)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                        default_root_dir=tmp_path)
    return trainer, Tiny(), data


def test_flag_saves_one_checkpoint_and_stops(tmp_path):
    from lightning.pytorch.callbacks import Callback

    from launcher.preempt import PreemptionCallback, PreemptionFlag, PreemptionStop

    old = signal.getsignal(signal.SIGUSR2)
    flag = PreemptionFlag().install()
    try:
        class SignalAtStep3(Callback):
            def on_train_batch_start(self, trainer, *args):
                if trainer.global_step == 3:
                    os.kill(os.getpid(), signal.SIGUSR2)

        preempt = PreemptionCallback(flag, tmp_path / "checkpoints")
        trainer, model, data = _tiny_trainer(tmp_path, [SignalAtStep3(), preempt], steps=8)
        with pytest.raises(PreemptionStop) as info:
            trainer.fit(model, data)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert flag.signum == signal.SIGUSR2 and preempt.interrupted_training
    assert info.value.global_step == 4  # saved at the end of the batch during which the signal came
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["preempt-step=4.ckpt"]  # written through ptycho_torch.atomic; no temporary file left behind
    import torch

    assert torch.load(tmp_path / "checkpoints" / files[0], weights_only=False)["global_step"] == 4


def test_no_signal_no_checkpoint(tmp_path):
    from launcher.preempt import PreemptionCallback, PreemptionFlag

    preempt = PreemptionCallback(PreemptionFlag(), tmp_path / "checkpoints")
    trainer, model, data = _tiny_trainer(tmp_path, [preempt], steps=3)
    trainer.fit(model, data)
    assert trainer.global_step == 3 and not (tmp_path / "checkpoints").exists()

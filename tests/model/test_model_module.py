"""PtychoPINNModule: construction, validation, state_dict, training/validation steps."""

import math

import numpy as np
import pytest
import torch

from ptycho_torch.errors import ConfigError
from ptycho_torch.model.module import PROBE_NORM_PER_N, PtychoPINNModule
from ptycho_torch.model.optim import warmup_cosine_factor
from ptycho_torch.physics.forward import probe_disk_mask


def _probe(n):
    return (probe_disk_mask(n) * 3.0).numpy().astype(np.complex64)


def _module(n=32, gridsize=1, **kw):
    torch.manual_seed(0)
    model = {"N": n, "gridsize": gridsize, "n_filters_scale": 1, **kw.pop("model", {})}
    return PtychoPINNModule(model, _probe(n), mean_total_intensity=kw.pop("mti", 50.0), nphotons=1e6, **kw)


def _batch(n, c, b=2):
    g = torch.Generator().manual_seed(1)
    offsets = torch.randn(b, c, 2, generator=g) * 2 if c > 1 else torch.zeros(b, c, 2)
    return {
        "diffraction": torch.rand(b, c, n, n, generator=g),
        "offsets": offsets,
        "positions": torch.zeros(b, c, 2, dtype=torch.float64),
        "index": torch.arange(b * c).view(b, c),
    }


@pytest.mark.parametrize("n,gridsize", [(64, 1), (64, 2), (128, 1)])
def test_predict_patches_shape_dtype(n, gridsize):
    m = _module(n, gridsize)
    batch = _batch(n, gridsize**2)
    out = m.predict_patches(batch["diffraction"], batch["offsets"])
    assert out.shape == (2, gridsize**2, n, n) and out.dtype == torch.complex64


def test_training_step_finite_loss_and_gradients():
    m = _module(32, 2)
    loss = m.training_step(_batch(32, 4), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    first = next(m.generator.parameters())  # the input layer, whatever the architecture
    assert first.grad.abs().sum() > 0
    assert m.log_intensity_scale.grad is not None and torch.isfinite(m.log_intensity_scale.grad)


def test_mae_mode_and_validation_step():
    m = _module(32, 1, loss={"torch_loss_mode": "mae"})
    assert torch.isfinite(m.validation_step(_batch(32, 1), 0))


def test_probe_is_normalised_and_in_state_dict():
    m = _module(32, 1, probe_trainable=True)
    probe = m.forward_model.probe
    assert probe.abs().square().sum().sqrt().item() == pytest.approx(PROBE_NORM_PER_N * 32, rel=1e-5)
    assert "forward_model.probe_ri" in m.state_dict()
    assert any(p is m.forward_model.probe_ri for p in m.parameters())
    frozen = _module(32, 1, intensity_scale_trainable=False)
    names = {n for n, _ in frozen.named_parameters()}
    assert "forward_model.probe_ri" not in names and "log_intensity_scale" not in names
    assert "log_intensity_scale" in frozen.state_dict() and "forward_model.probe_ri" in frozen.state_dict()


def test_uniform_half_amplitude_object_explains_mean_intensity():
    # documented normalisation: |O| = probe_scale/8 gives sum_hw A^2 = (N/2)^2
    m = _module(32, 1)
    obj = torch.full((1, 1, 32, 32), 0.5 + 0j, dtype=torch.complex64)
    amp, _ = m.forward_model(obj)
    assert amp.square().sum().item() == pytest.approx(16.0**2, rel=1e-4)


def test_photon_scales():
    m = _module(32, 1, mti=50.0)
    assert m.intensity_scale == pytest.approx(math.sqrt(1e6 / 50.0), rel=1e-5)
    x = torch.rand(1, 1, 32, 32)
    # s_norm * X_norm == s * X: same counts either way
    assert torch.allclose(m.measured_scale * m.normalise(x), math.sqrt(1e6 / 50.0) * x, rtol=1e-5)


def test_state_dict_round_trip():
    a = _module(32, 2, probe_trainable=True)
    torch.manual_seed(123)
    b = PtychoPINNModule(dict(a.hparams["model"]), _probe(32) * 7, 50.0, 1e6, probe_trainable=True)
    batch = _batch(32, 4)
    assert not torch.allclose(a.predict_patches(batch["diffraction"], batch["offsets"]),
                              b.predict_patches(batch["diffraction"], batch["offsets"]))
    b.load_state_dict(a.state_dict(), strict=True)
    assert torch.equal(a.predict_patches(batch["diffraction"], batch["offsets"]),
                       b.predict_patches(batch["diffraction"], batch["offsets"]))


def test_hyperparameters_exclude_probe_and_are_resolved():
    m = _module(32, 1)
    assert "probe" not in m.hparams
    assert m.hparams["model"]["probe_scale"] == 4.0 and m.hparams["optim"]["optimizer"] == "adam"


@pytest.mark.parametrize(
    "kwargs,where",
    [
        ({"model": {"model_type": "supervised"}}, "model.model_type"),
        ({"model": {"architecture": "fno"}}, "model.architecture"),
        ({"model": {"amp_activation": "tanh"}}, "model.amp_activation"),
        ({"model": {"n_filter_scale": 2}}, "model.n_filter_scale"),
        ({"optim": {"scheduler": "cosine"}}, "optim.scheduler"),
        ({"optim": {"optimizer": "lbfgs"}}, "optim.optimizer"),
        ({"loss": {"torch_loss_mode": "l2"}}, "loss.torch_loss_mode"),
        ({"mti": -1.0}, "mean_total_intensity"),
    ],
)
def test_bad_config_is_one_clear_line(kwargs, where):
    with pytest.raises(ConfigError) as err:
        _module(32, 1, **kwargs)
    line = err.value.one_line()
    assert line.startswith(where) and "HINT" in line and "expected" in line and "\n" not in line


def test_probe_shape_mismatch():
    with pytest.raises(ConfigError, match="probe"):
        PtychoPINNModule({"N": 64}, _probe(32), 1.0, 1e9)


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("sched", ["Default", "Exponential", "WarmupCosine", "ReduceLROnPlateau"])
def test_configure_optimizers(opt, sched):
    m = _module(32, 1, optim={"optimizer": opt, "scheduler": sched, "nepochs": 10, "lr_warmup_epochs": 2})
    cfg = m.configure_optimizers()
    optimizer = cfg if sched == "Default" else cfg["optimizer"]
    assert type(optimizer).__name__.lower() == opt
    if sched == "ReduceLROnPlateau":
        assert cfg["lr_scheduler"]["monitor"] == "train_loss"
    if sched == "Exponential":
        sch = cfg["lr_scheduler"]["scheduler"]
        for _ in range(10):
            optimizer.step()
            sch.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-4)


def test_warmup_cosine_factor():
    assert warmup_cosine_factor(0, 2, 10, 0.1) == pytest.approx(0.5)
    assert warmup_cosine_factor(2, 2, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, 2, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(6, 2, 10, 0.1) == pytest.approx(0.55)


def test_lightning_fit_logs_train_and_val_loss_and_updates_weights():
    import lightning as L
    from torch.utils.data import DataLoader

    m = _module(32, 2, optim={"scheduler": "ReduceLROnPlateau"})
    before = next(m.generator.parameters()).detach().clone()
    data = [{k: v[0] for k, v in _batch(32, 4, b=1).items()} for _ in range(4)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, DataLoader(data, batch_size=2), DataLoader(data, batch_size=2))
    assert {"train_loss", "val_loss"} <= set(trainer.callback_metrics)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert not torch.equal(before, next(m.generator.parameters()))

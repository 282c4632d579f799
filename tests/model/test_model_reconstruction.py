"""End-to-end check that the module actually reconstructs (slow; opt-in).

Simulates a toy object (250 blurred random blobs, amplitude 0.3-1, phase derived from
the amplitude), a soft disk probe (diameter N/2) with a mild curved phase, a 22 x 22
raster scan (step 3 px) at N = 32, diffraction through the physics stages with Poisson
noise at 1e9 photons; groups 2x2 neighbouring positions (gridsize 2, overlap
constraint), trains PtychoPINNModule for 16 epochs on one CPU thread through a real
Lightning Trainer (~35-40 s), and checks that the predicted patch amplitudes correlate
with the true ones on the central N/2 region (mean Pearson r) far better than at
initialisation.  Measured when written: r 0.83 (seed 0) and 0.75 (seed 1) from about 0.0.
Known failing now (opt-in, not in CI): r 0.52 on the code before the overlap constraint
stopped interpolating (its half-pixel double bilinear pass smoothed the patches), and
r 0.29 after (2026-11-24); the same change left the gridsize-2 lines benchmark unchanged.
With a flat disk at gridsize 1 the twin image is not resolved (r ~ 0.3).

Run it with ``PTYCHO_SLOW=1 python -m pytest tests/model/test_model_reconstruction.py -q``
or directly ``python tests/model/test_model_reconstruction.py`` (prints the numbers).
"""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from ptycho_torch.model.module import PtychoPINNModule
from ptycho_torch.physics.forward import far_field_amplitude, illuminate, probe_disk_mask

N = 32
OBJECT_PX = 96
STEP_PX = 3
NPHOTONS = 1e9
CURVATURE = 0.05  # rad/px^2: mild defocus, breaks the twin-image ambiguity of a flat disk
EPOCHS = 16


def toy_object(size: int, seed: int = 0) -> torch.Tensor:
    """``[size, size]`` complex64: blurred random blobs, amplitude in [0.3, 1], phase from it."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    field = torch.zeros(size, size, dtype=torch.float64)
    for _ in range(250):
        cx, cy = (torch.rand(2, generator=g, dtype=torch.float64) * size).tolist()
        w = 1.0 + 2.0 * torch.rand(1, generator=g).item()
        sign = 1.0 if torch.rand(1, generator=g).item() < 0.7 else -1.0
        field += sign * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * w**2))
    field = (field - field.min()) / (field.max() - field.min())
    amp = 0.3 + 0.7 * field
    phase = 0.5 * math.pi * (field - 0.5)
    return (amp * torch.exp(1j * phase)).to(torch.complex64)


def raster_positions(size: int, n: int, step: int) -> torch.Tensor:
    """``[n_pos, 2]`` integer ``(x, y)`` positions at least n/2 from the edges."""
    coords = torch.arange(n // 2, size - n // 2 + 1, step, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def cut_patches(obj: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """``[n_pos, 1, n, n]`` patches centred at integer positions (docs/conventions.md)."""
    out = [obj[int(y) - n // 2 : int(y) + n // 2, int(x) - n // 2 : int(x) + n // 2] for x, y in positions.tolist()]
    return torch.stack(out).unsqueeze(1)


def disk_probe(n: int, curvature: float) -> torch.Tensor:
    """``[n, n]`` complex64 soft disk of diameter n/2 with phase ``curvature * r^2`` (rad)."""
    coords = torch.arange(n, dtype=torch.float32) - n // 2
    r2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    return (probe_disk_mask(n, n / 2, 1.0) * torch.exp(1j * curvature * r2)).to(torch.complex64)


def simulate(seed: int = 0, curvature: float = CURVATURE):
    """Return (true patches [n,1,N,N], diffraction amplitude [n,1,N,N] float32, probe, positions [n,2])."""
    obj = toy_object(OBJECT_PX, seed)
    probe = disk_probe(N, curvature)
    positions = raster_positions(OBJECT_PX, N, STEP_PX)
    patches = cut_patches(obj, positions, N)
    intensity = far_field_amplitude(illuminate(patches, probe, 1.0)).double().square()
    intensity = intensity * (NPHOTONS / intensity.sum(dim=(-2, -1), keepdim=True).mean())
    counts = torch.poisson(intensity, generator=torch.Generator().manual_seed(seed + 1))
    return patches, counts.sqrt().float(), probe, positions


def square_groups(n_side: int, gap: int = 1) -> torch.Tensor:
    """``[G, 4]`` raster indices of 2x2 groups ``(i, j), (i, j+gap), (i+gap, j), (i+gap, j+gap)``."""
    groups = []
    for i in range(n_side - gap):
        for j in range(n_side - gap):
            groups.append([i * n_side + j, i * n_side + j + gap, (i + gap) * n_side + j, (i + gap) * n_side + j + gap])
    return torch.tensor(groups)


def group_batch(diff: torch.Tensor, positions: torch.Tensor, groups: torch.Tensor) -> dict:
    """Batch dict (docs/conventions.md) for the given groups ``[G, C]`` of pattern indices."""
    pos = positions[groups]  # [G, C, 2]
    return {
        "diffraction": diff[groups, 0],
        "offsets": (pos - pos.mean(dim=1, keepdim=True)).float(),
        "positions": pos,
        "index": groups,
    }


def central_pearson(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Mean over patches of the Pearson r of amplitudes on the central N/2 x N/2 region."""
    lo, hi = N // 4, 3 * N // 4
    a = pred.abs()[..., lo:hi, lo:hi].flatten(1).double()
    b = true.abs()[..., lo:hi, lo:hi].flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return float(r.mean())


def train_and_score(epochs: int = EPOCHS, seed: int = 0, gridsize: int = 2) -> dict:
    """Simulate, train through a Lightning Trainer, return correlations before/after and timing."""
    import lightning as L
    from torch.utils.data import DataLoader, Dataset

    torch.set_num_threads(1)
    true, diff, probe, positions = simulate(seed)
    n_side = int(round(math.sqrt(diff.shape[0])))
    groups = square_groups(n_side) if gridsize == 2 else torch.arange(diff.shape[0]).view(-1, 1)
    batch = group_batch(diff, positions, groups)
    true_groups = true[groups, 0]

    class _Groups(Dataset):
        def __len__(self):
            return groups.shape[0]

        def __getitem__(self, i):
            return {k: v[i] for k, v in batch.items()}

    mti = float(diff.double().square().sum(dim=(-2, -1)).mean())
    torch.manual_seed(seed)
    module = PtychoPINNModule({"N": N, "n_filters_scale": 1, "gridsize": gridsize}, probe, mti, NPHOTONS,
                              optim={"learning_rate": 2e-3, "nepochs": epochs})

    def score() -> float:
        pred = module.predict_patches(batch["diffraction"], batch["offsets"])
        return central_pearson(pred.flatten(0, 1).unsqueeze(1), true_groups.flatten(0, 1).unsqueeze(1))

    r_init = score()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(_Groups(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    seconds = time.perf_counter() - t0
    module.eval()
    return {"r_init": r_init, "r_final": score(), "train_s": round(seconds, 1), "groups": groups.shape[0],
            "gridsize": gridsize, "epochs": epochs, "final_loss": float(trainer.callback_metrics["train_loss"])}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PTYCHO_SLOW") != "1", reason="slow (~1 min CPU) reconstruction check: set PTYCHO_SLOW=1")
def test_module_reconstructs_toy_object():
    res = train_and_score()
    assert res["r_final"] > 0.7, res
    assert res["r_final"] > res["r_init"] + 0.3, res


if __name__ == "__main__":
    import sys

    print(train_and_score(seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0))

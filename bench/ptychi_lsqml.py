"""pty-chi LSQML baseline: flat object start, known (fixed) probe, fixed positions.

    run_lsqml(scan_path, epochs, device="cpu", batch_size=None, on_epoch=None) -> dict

returns {"records": [{"epoch", "seconds_cumulative", "object"}, ...], "probe_scale": c,
"offset": (0, 0)}.  ``object`` is complex64 (M, M) on the SAME grid as the scan's
objectGuess (offset (0, 0); nothing to map).  ``on_epoch(epoch, object, seconds)`` is
called after every epoch; ``seconds`` is cumulative solver time (setup and the
per-epoch object copy excluded).

Conventions handled here (checked by reconstructing a simulated scan against its truth):
  * data: pty-chi wants INTENSITIES, unshifted data with ``fft_shift=True`` meaning "the
    given patterns have DC at the centre": we pass amplitude**2 of the centred frames
    with fft_shift=True.
  * positions: pty-chi takes (y, x) patch CENTRES in object pixels, with the patch
    starting at ``pos - (N - 1) / 2``; this project's patch starts at ``pos - N / 2``,
    so we pass ``pos - 0.5`` with the position origin SPECIFIED as (0, 0), which keeps
    pty-chi's object buffer identical to the objectGuess grid.
  * scale: pty-chi's far-field model is an unnormalised FFT; the scan's counts were
    rescaled to ``nphotons``, so the known probe is multiplied by one scalar ``c`` chosen
    so that a unit-amplitude object predicts the measured mean total count
    (c**2 * N**2 * sum|probe|**2 = mean total count).  The recovered object amplitude is
    therefore relative to that assumption (truth need not have mean amplitude 1).

pty-chi is NOT a project dependency.  Install it in a separate venv (never let pip touch
torch), see bench/README.md:

    python3 -m venv --system-site-packages /work/venv-ptychi
    /work/venv-ptychi/bin/pip install --no-deps ptychi==2.2.0
    # ptychi imports torchvision.transforms.GaussianBlur; see README for torchvision
    /work/venv-ptychi/bin/pip install --no-deps -e .

CLI: python bench/ptychi_lsqml.py SCAN.npz --epochs 20 [--batch-size B] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

INSTALL_HINT = (
    "pty-chi is not importable. It is an optional benchmark dependency, not part of the "
    "project. Install it in a separate venv without touching torch:\n"
    "  python3 -m venv --system-site-packages /work/venv-ptychi\n"
    "  /work/venv-ptychi/bin/pip install --no-deps ptychi==2.2.0\n"
    "  (plus torchvision matching your torch, or the GaussianBlur stand-in; see bench/README.md)\n"
    "  /work/venv-ptychi/bin/pip install --no-deps -e <repo>\n"
    "then run with /work/venv-ptychi/bin/python."
)


def _import_ptychi():
    try:
        import ptychi.api as api
        from ptychi.api.task import PtychographyTask
    except ImportError as e:  # includes a missing torchvision
        raise ImportError(f"{INSTALL_HINT}\n(original error: {e})") from e
    return api, PtychographyTask


def run_lsqml(scan_path, epochs, device="cpu", batch_size=None, on_epoch=None):
    """Run pty-chi LSQML for ``epochs`` epochs; see the module docstring."""
    import torch

    from ptycho_torch.data import open_scan

    api, PtychographyTask = _import_ptychi()
    r = open_scan(scan_path)
    amp = np.asarray(r.read_frames(np.arange(r.n)), dtype=np.float64)
    intens = (amp ** 2).astype(np.float32)
    probe = np.asarray(r.probe, dtype=np.complex64)
    n_pix = probe.shape[-1]
    obj_shape = np.asarray(r.object_guess).shape
    pos = np.asarray(r.positions, dtype=np.float64)
    mean_total = float(intens.sum(axis=(1, 2)).mean())
    c = np.sqrt(mean_total / (n_pix ** 2 * float((np.abs(probe) ** 2).sum())))
    probe = (probe * c).astype(np.complex64)

    o = api.LSQMLOptions()
    o.data_options.data = intens
    o.data_options.fft_shift = True
    o.object_options.initial_guess = torch.ones((1,) + tuple(obj_shape), dtype=torch.complex64)
    o.object_options.pixel_size_m = 1.0
    o.object_options.optimizable = True
    o.object_options.determine_position_origin_coords_by = api.enums.ObjectPosOriginCoordsMethods.SPECIFIED
    o.object_options.position_origin_coords = np.array([0.0, 0.0])
    o.probe_options.initial_guess = torch.as_tensor(probe)[None, None]
    o.probe_options.optimizable = False
    o.probe_position_options.position_y_px = pos[:, 1] - 0.5
    o.probe_position_options.position_x_px = pos[:, 0] - 0.5
    o.probe_position_options.optimizable = False
    o.reconstructor_options.num_epochs = int(epochs)
    o.reconstructor_options.batch_size = int(batch_size) if batch_size else 96
    o.reconstructor_options.default_device = (
        api.enums.Devices.GPU if str(device).startswith("cuda") else api.enums.Devices.CPU)

    records = []
    with PtychographyTask(o) as task:
        t = 0.0
        for ep in range(1, int(epochs) + 1):
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            task.run(1)
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            t += time.perf_counter() - t0
            obj = task.get_data_to_cpu("object", as_numpy=True)
            obj = np.asarray(obj)[0].astype(np.complex64)
            records.append({"epoch": ep, "seconds_cumulative": t, "object": obj})
            if on_epoch is not None:
                on_epoch(ep, obj, t)
    return {"records": records, "probe_scale": float(c), "offset": (0, 0)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    from ptycho_torch.data import open_scan
    from ptycho_torch.evaluate.metrics import evaluate_reconstruction
    from ptycho_torch.evaluate.stitch import scanned_bbox

    r = open_scan(a.scan)
    truth = np.asarray(r.object_guess)
    bbox = scanned_bbox(r.positions, np.asarray(r.probe).shape[-1])
    print(f"{'epoch':>5} {'seconds':>8} {'amp_ssim':>9} {'phase_ssim':>10}", flush=True)

    def cb(ep, obj, sec):
        m = evaluate_reconstruction(obj, truth, bbox=bbox)
        print(f"{ep:5d} {sec:8.2f} {m['amp_ssim']:9.4f} {m['phase_ssim']:10.4f}", flush=True)

    run_lsqml(a.scan, a.epochs, device=a.device, batch_size=a.batch_size, on_epoch=cb)


if __name__ == "__main__":
    main()

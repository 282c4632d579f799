"""What the training diagnostics cost: a snapshot and the per-step scalars against training steps.

    python bench/diagnostics.py            # the demo's scan and recipe; median of --repeats runs
    python bench/diagnostics.py --smoke    # seconds; proves the pipeline runs

On the demo's scan (``ptycho-simulate --probe curved``: 400 positions, N = 64) with the demo's
model (resunet, ``n_filters_scale`` 1, batch 4), measured in the same process:

* ``step_s``: one optimiser step (loss, backward, Adam), the median over ``--steps`` steps;
* ``scalars_s``: what :class:`~ptycho_torch.workflows.diagnostics.TrainingDiagnostics` adds to a
  step (per-pixel loss, gradient norm), the median over the same steps;
* ``snapshot_s``: one snapshot (sample diffraction, stitched object of the first 256 groups, SSIM/FRC
  against the truth), the median of ``--repeats`` after a warm-up.

The demo trains 20 epochs of 100 steps and takes 5 snapshots (the default), so the projected
overhead is ``(5 * snapshot_s + 2000 * scalars_s) / (2000 * step_s)``.  Results go to stdout and
``bench/results/diagnostics.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "diagnostics.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a small scan, 3 steps, 1 repeat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from ptycho_torch.factory import create_training_payload
    from ptycho_torch.simulate.simulate import SimulationConfig, write_scan
    from ptycho_torch.workflows.diagnostics import TrainingDiagnostics, per_pixel_loss
    from ptycho_torch.workflows.train import build_datamodule, build_module

    steps, repeats = (3, 1) if args.smoke else (args.steps, args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="bench-diagnostics-"))
    sim = SimulationConfig(probe="curved", object_size=112, step=8.0) if args.smoke else SimulationConfig(probe="curved")
    scan = write_scan(sim, tmp / "scan.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = create_training_payload(overrides={
            "train_data_file": str(scan), "output_dir": str(tmp / "run"), "batch_size": 4, "n_groups": 400,
            "model.n_filters_scale": 1, "execution.accelerator": "cpu"})
    datamodule = build_datamodule(payload)
    torch.manual_seed(0)
    module = build_module(payload, datamodule)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    batches = iter(datamodule.predict_dataloader(batch_size=4))

    step_s, scalars_s = [], []
    for _ in range(steps):
        batch = next(batches)
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = module.compute_loss(batch)
        loss.backward()
        optimizer.step()
        step_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        with torch.no_grad():
            per_pixel_loss(loss, module.normalise(batch["diffraction"]), module.loss_cfg)
            norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
            float(torch.linalg.vector_norm(torch.stack(norms)))
        scalars_s.append(time.perf_counter() - started)

    diagnostics = TrainingDiagnostics()
    loader, reader = diagnostics._snapshot_data(datamodule)
    module.eval()
    diagnostics._measure(module, loader, reader)  # warm-up (imports, first allocations)
    snapshot_s = []
    for _ in range(repeats):
        started = time.perf_counter()
        scalars, _ = diagnostics._measure(module, loader, reader)
        snapshot_s.append(time.perf_counter() - started)

    result = {
        "n_positions": int(len(loader.dataset)),
        "threads": torch.get_num_threads(),
        "step_s": statistics.median(step_s),
        "scalars_s": statistics.median(scalars_s),
        "snapshot_s": statistics.median(snapshot_s),
        "snapshot_runs_s": snapshot_s,
        "snapshot_scalars": scalars,
    }
    demo_train = 2000 * result["step_s"]
    result["demo_projected_overhead"] = (diagnostics.snapshots * result["snapshot_s"] + 2000 * result["scalars_s"]) / demo_train
    print(f"positions {result['n_positions']}, {result['threads']} threads")
    print(f"optimiser step   {result['step_s'] * 1e3:8.1f} ms (median of {steps})")
    print(f"per-step scalars {result['scalars_s'] * 1e3:8.2f} ms ({result['scalars_s'] / result['step_s']:.1%} of a step)")
    print(f"snapshot         {result['snapshot_s']:8.2f} s  (median of {repeats}; "
          f"{result['snapshot_s'] / result['step_s']:.0f} steps' worth)")
    print(f"projected overhead on the demo (20 epochs x 100 steps, {diagnostics.snapshots} snapshots): {result['demo_projected_overhead']:.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from ptycho_torch.atomic import write_json_atomic

    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

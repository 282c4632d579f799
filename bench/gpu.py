"""GPU throughput benchmark, run in one go: training groups/s and inference patterns/s, JSON out.

    python bench/gpu.py                            # on a GPU machine: the full grid below
    python bench/gpu.py --gridsizes 2 --batches 64 256 --out /tmp/gpu.json
    python bench/gpu.py --smoke --device cpu       # tiny, seconds, on the CPU (CI)

What it measures (N = 64, n_filters_scale 2, synthetic inputs of the right shapes; the
model is :class:`~ptycho_torch.model.module.PtychoPINNModule` exactly as shipped):

* training: groups/s of full optimiser steps (loss, backward, Adam step) for every
  combination of gridsize (``--gridsizes``), batch (``--batches``, default 16/64/256),
  precision (fp32, bf16 autocast for the network -- the physics stays float32),
  channels_last (on: as shipped; off: generator weights in contiguous format) and
  ``torch.compile`` of the generator (on/off);
* inference: patterns/s of the forward pass only (network plus the overlap constraint,
  no stitching, no data loading) under ``torch.inference_mode``, per gridsize, batch and
  precision.  The issue's goal is >= 50k patterns/s at N = 64 on one H100-class GPU.

Timing: ``--warmup`` untimed steps (compilation happens there), then ``--steps`` timed
steps, ``torch.cuda.synchronize`` around the timed region; repeated ``--repeats`` times,
medians reported.  A configuration that fails (e.g. out of memory at batch 256 or no
compiler backend) is recorded with its error and the run goes on.  ``--smoke`` runs gridsize 2,
N = 32, width 1, batch 2, one step, no warm-up, compile off (compiling takes minutes on a CPU): it only proves
the script runs.  Results go to stdout and to JSON (``bench/results/gpu.json`` by default,
written atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "gpu.json"
PRECISIONS = ("fp32", "bf16")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: --device cuda but no CUDA device is visible (try --device cpu)")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _module(n: int, gridsize: int, width: int, device: torch.device, channels_last: bool, compile_: bool):
    from ptycho_torch.model.module import PtychoPINNModule
    from ptycho_torch.physics.forward import probe_disk_mask

    torch.manual_seed(0)
    probe = (probe_disk_mask(n) * 3).numpy().astype(np.complex64)
    module = PtychoPINNModule({"N": n, "gridsize": gridsize, "n_filters_scale": width}, probe,
                              mean_total_intensity=float((n / 2) ** 2), nphotons=1e9).to(device)
    if not channels_last:
        module.generator.to(memory_format=torch.contiguous_format)
    if compile_:
        module.generator = torch.compile(module.generator)
    return module


def _batch(b: int, gridsize: int, n: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(1)
    c = gridsize * gridsize
    grid = torch.tensor([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]])[:c] if c > 1 else torch.zeros(1, 2)
    offsets = grid + (torch.randn(b, c, 2, generator=g) if c > 1 else 0)
    return {"diffraction": (torch.rand(b, c, n, n, generator=g) * 2).to(device),
            "offsets": (offsets - offsets.mean(dim=1, keepdim=True)).to(device)}


def _rate(fn, items: int, device: torch.device, warmup: int, steps: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        rates.append(items * steps / (time.perf_counter() - start))
    return rates


def train_rate(cfg: dict, args, device: torch.device) -> list[float]:
    """Groups/s of full training steps for one configuration."""
    module = _module(args.n, cfg["gridsize"], args.width, device, cfg["channels_last"], cfg["compile"])
    batch = _batch(cfg["batch"], cfg["gridsize"], args.n, device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(device, cfg["precision"]):
            loss = module.compute_loss(batch)
        loss.backward()
        opt.step()

    return _rate(step, cfg["batch"], device, args.warmup, args.steps, args.repeats)


def infer_rate(cfg: dict, args, device: torch.device) -> list[float]:
    """Patterns/s of the forward pass (network + constraint, no stitching) for one configuration."""
    module = _module(args.n, cfg["gridsize"], args.width, device, True, cfg["compile"]).eval()
    batch = _batch(cfg["batch"], cfg["gridsize"], args.n, device)

    def forward():
        with torch.inference_mode(), _autocast(device, cfg["precision"]):
            module.predict_patches(batch["diffraction"], batch["offsets"])

    return _rate(forward, cfg["batch"] * cfg["gridsize"] ** 2, device, args.warmup, args.steps, args.repeats)


def _run(kind: str, fn, cfg: dict, args, device) -> dict:
    row = dict(cfg, kind=kind)
    try:
        rates = fn(cfg, args, device)
        row.update(median=statistics.median(rates), samples=rates)
    except Exception as exc:  # one failing configuration (OOM, no compiler) must not end the run
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    unit = "groups/s" if kind == "train" else "patterns/s"
    shown = f"{row['median']:10.1f} {unit}" if "median" in row else f"FAILED {row['error']}"
    print(f"{kind:5s} gs{cfg['gridsize']} B={cfg['batch']:<4d} {cfg['precision']:4s} "
          f"channels_last={'on ' if cfg.get('channels_last', True) else 'off'} compile={'on ' if cfg['compile'] else 'off'}  {shown}")
    sys.stdout.flush()
    return row


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (auto: cuda if visible)")
    parser.add_argument("--gridsizes", type=int, nargs="+", default=[1, 2], help="gridsizes to measure")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256], help="groups per batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (median)")
    parser.add_argument("--width", type=int, default=2, help="n_filters_scale")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile configurations")
    parser.add_argument("--smoke", action="store_true", help="tiny run (gs2, N=32, width 1, B=2, 1 step, no compile)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    if min(args.batches + args.gridsizes) < 1 or min(args.steps, args.repeats, args.width) < 1 or args.warmup < 0:
        parser.error("batches, gridsizes, steps, repeats and width must be >= 1; warmup >= 0")
    if max(args.gridsizes) > 2:
        parser.error("gridsizes must be 1 or 2 (the synthetic groups have at most 4 patches)")
    args.n = 64
    if args.smoke:
        args.n, args.width, args.batches, args.steps, args.warmup, args.repeats, args.no_compile = 32, 1, [2], 1, 0, 1, True
        args.gridsizes = [2]  # the constraint path; gs1 is the same network minus it
    return args


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    device = _device(args.device)
    from ptycho_torch.atomic import write_json_atomic

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {platform.processor() or platform.machine()}"
    result = {"bench": "gpu", "smoke": args.smoke, "device": name, "torch": torch.__version__, "N": args.n,
              "n_filters_scale": args.width, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
              "threads": torch.get_num_threads(), "train": [], "infer": []}
    compiles = (False,) if args.no_compile else (False, True)
    start = time.perf_counter()
    for gs, b, prec, cl, comp in itertools.product(args.gridsizes, args.batches, PRECISIONS, (True, False), compiles):
        cfg = {"gridsize": gs, "batch": b, "precision": prec, "channels_last": cl, "compile": comp}
        result["train"].append(_run("train", train_rate, cfg, args, device))
    for gs, b, prec, comp in itertools.product(args.gridsizes, args.batches, PRECISIONS, compiles):
        cfg = {"gridsize": gs, "batch": b, "precision": prec, "compile": comp}
        result["infer"].append(_run("infer", infer_rate, cfg, args, device))
    result["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

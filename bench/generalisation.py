"""Generalisation: train on one object family, reconstruct another.

    python bench/generalisation.py                                   # both pairs, gridsize 1 and 2
    python bench/generalisation.py --gridsizes 1 --pairs lines:grf --steps 2000
    python bench/generalisation.py --smoke                           # seconds; proves the pipeline runs

A model that only reconstructs the scan it was trained on is a slow iterative solver.  For
each gridsize and each pair ``A:B`` (default ``lines:grf`` and ``dead_leaves:lines``) this
trains the default recipe (``examples/demo.yaml``, the default architecture) on one scan of
family A for a fixed number of optimisation steps, then reconstructs, with the network alone:

* ``train``:      the training scan itself (self-supervised, what the demo does);
* ``same_family``: an unseen scan of family A (another seed);
* ``other_family``: an unseen scan of family B.

Each is scored (amplitude and phase SSIM of the probe-weighted stitched object against the
ground truth, over the scanned area) beside a flat object's score on the same scan (what
"says nothing" scores), and the other-family object is also refined for a few passes
(:func:`ptycho_torch.refine.refine_object`) from the network's object and from a flat start,
so the table shows what the network still contributes on an object it never saw.

Scans: N = 64, 224 px objects, raster step 8 px with 1 px jitter (400 positions), 1e9
photons; gridsize 1 uses the curved probe, gridsize 2 the disk probe (the quality-per-step
benchmark's cases).  Output: a table on stdout and JSON (``bench/results/generalisation.json``,
git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from refinement import _score_fn, network_object, refine_trace, train_network  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "generalisation.json"
DEFAULT_PAIRS = ("lines:grf", "dead_leaves:lines")
PROBE_FOR_GRIDSIZE = {1: "curved", 2: "disk"}
SEEDS = {"train": 1, "same_family": 2, "other_family": 3}
BATCH_SIZE = 4
N_GROUPS = 400


def _simulate(work: Path, family: str, probe: str, seed: int, object_size: int) -> Path:
    from ptycho_torch.simulate import SimulationConfig, write_scan

    path = work / f"{family}-{probe}-{seed}.npz"
    if not path.exists():
        write_scan(SimulationConfig(object=family, probe=probe, seed=seed, object_size=object_size), path)
    return path


def _flat_score(reader) -> dict[str, float]:
    return _score_fn(reader)(np.ones(reader.object_guess.shape, np.complex64))


def run_pair(pair: str, gridsize: int, steps: int, refine_passes: int, work: Path, object_size: int,
             n_groups: int) -> dict[str, Any]:
    from ptycho_torch.data import open_scan

    train_family, test_family = pair.split(":")
    probe = PROBE_FOR_GRIDSIZE[gridsize]
    scans = {"train": _simulate(work, train_family, probe, SEEDS["train"], object_size),
             "same_family": _simulate(work, train_family, probe, SEEDS["same_family"], object_size),
             "other_family": _simulate(work, test_family, probe, SEEDS["other_family"], object_size)}
    nepochs = max(1, round(steps * BATCH_SIZE / n_groups))
    recipe = {"model.gridsize": gridsize, "nepochs": nepochs, "n_groups": n_groups, "batch_size": BATCH_SIZE}
    started = time.perf_counter()
    bundle = train_network(scans["train"], work / f"gs{gridsize}-{train_family}", recipe)
    result: dict[str, Any] = {"pair": pair, "gridsize": gridsize, "probe": probe, "steps": nepochs * n_groups // BATCH_SIZE,
                              "train_seconds": round(time.perf_counter() - started, 1), "scans": {}}
    for role, scan in scans.items():
        reader = open_scan(scan)
        obj, seconds = network_object(bundle, scan, work / f"gs{gridsize}-{train_family}-{role}")
        row = {"family": train_family if role != "other_family" else test_family, "seed": SEEDS[role],
               "network": _score_fn(reader)(obj), "flat": _flat_score(reader), "inference_seconds": round(seconds, 2)}
        if role == "other_family" and refine_passes:
            for start_name, start in (("network", obj), ("flat", np.ones(reader.object_guess.shape, np.complex64))):
                trace = refine_trace(reader, start, refine_passes)
                row[f"refined_from_{start_name}"] = trace["final"]
        result["scans"][role] = row
    return result


def format_table(results: dict[str, Any]) -> str:
    head = (f"{'gs':>2} {'train->test':<18} {'steps':>5} {'scan':<13} {'family':<11} {'net amp':>7} {'net ph':>6} "
            f"{'flat amp':>8} {'flat ph':>7}  refined amp (from net / from flat)")
    lines = [head]
    for run in results["runs"]:
        for role, row in run["scans"].items():
            refined = ""
            if "refined_from_network" in row:
                refined = (f"{row['refined_from_network']['amp_ssim']:.3f} / {row['refined_from_flat']['amp_ssim']:.3f}"
                           f" after {row['refined_from_network']['iteration']} passes")
            net, flat = row["network"], row["flat"]
            lines.append(f"{run['gridsize']:>2} {run['pair'].replace(':', '->'):<18} {run['steps']:>5} {role:<13} "
                         f"{row['family']:<11} {net['amp_ssim']:7.3f} {net['phase_ssim']:6.3f} {flat['amp_ssim']:8.3f} "
                         f"{flat['phase_ssim']:7.3f}  {refined}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS),
                        help="TRAIN:TEST object families (lines, grf, dead_leaves).")
    parser.add_argument("--gridsizes", nargs="+", type=int, choices=sorted(PROBE_FOR_GRIDSIZE), default=[1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="Optimisation steps of each training (batch 4).")
    parser.add_argument("--refine-passes", type=int, default=5, help="Refinement passes on the other-family scan.")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: proves the pipeline runs (seconds).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    families = {"lines", "grf", "dead_leaves"}
    for pair in args.pairs:
        parts = pair.split(":")
        if len(parts) != 2 or not set(parts) <= families:
            parser.error(f"--pairs: expected TRAIN:TEST with families from {sorted(families)}, found {pair!r}")
    import torch

    torch.set_num_threads(args.threads)
    object_size, n_groups, steps, passes = 224, N_GROUPS, args.steps, args.refine_passes
    if args.smoke:
        object_size, n_groups, steps, passes = 112, 8, 2, 1
        args.pairs, args.gridsizes = args.pairs[:1], args.gridsizes[:1]
    results: dict[str, Any] = {"torch": torch.__version__, "threads": args.threads, "runs": []}
    with tempfile.TemporaryDirectory(prefix="ptycho-generalisation-") as tmp:
        for gridsize in args.gridsizes:
            for pair in args.pairs:
                results["runs"].append(run_pair(pair, gridsize, steps, passes, Path(tmp), object_size, n_groups))
                print(format_table({"runs": results["runs"][-1:]}), flush=True)  # progress, run by run
    print("\n" + format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()

"""Time to quality: network + physics refinement versus a flat start and versus pty-chi LSQML.

    python bench/refinement.py                       # dense and sparse cases, writes JSON
    python bench/refinement.py --cases dense --bundle runs/demo/model.ptpinn --scan data/lines.npz
    python bench/refinement.py --smoke               # seconds; proves the pipeline runs

Cases (simulated "lines" objects, N = 64, curved probe, gridsize 1):

* ``dense``: the demo's scan (224 px object, raster step 8 px, 400 positions, 1e9 photons).
  The network is trained on that scan itself (self-supervised, as the demo does) with the
  demo's recipe (``examples/demo.yaml``), unless ``--bundle`` gives a trained one.
* ``sparse``: raster step 24 px (49 positions on a 224 px object), 1e4 photons: little
  overlap, few photons.  The network is trained on *other* sparse scans of the same object
  family (16 scans, other seeds, 784 patterns; 4900 steps) and applied to an unseen one.

For each case: the network's own object (probe-weighted stitching), then refinement
(:func:`ptycho_torch.refine.refine_object`) from the network's object and from a flat object,
scored against the ground truth after every pass; and pty-chi's LSQML from a flat object
(when ``bench/ptychi_lsqml.py`` can import ptychi; see that file for the install).  A third
refinement starts from the ground truth itself: a calibration of the scan, not a method.  Where
the data determine the object (the dense case) refinement keeps the truth; where they do not
(the sparse 1e4-photon case) fitting the data moves even the truth away, and the SSIM it falls
to says how far the likelihood's optimum lies from the object: a refinement that only fits the
data gains nothing above that, whatever it starts from (the hold-out guard then hands back its
start).  Reported: passes and seconds to amplitude SSIM 0.95 and 0.99 (``null`` = not
reached), the SSIM after the first pass, and the final SSIMs.  Seconds exclude the scoring
done between passes.  Results go to stdout and JSON
(``bench/results/refinement.json``; ``bench/results`` is git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "refinement.json"
THRESHOLDS = (0.95, 0.99)
N = 64


def _score_fn(reader) -> Callable[[np.ndarray], dict[str, float]]:
    from ptycho_torch.evaluate.metrics import evaluate_reconstruction
    from ptycho_torch.evaluate.stitch import scanned_bbox

    truth, bbox = reader.object_guess, scanned_bbox(reader.positions, N)

    def score(obj: np.ndarray) -> dict[str, float]:
        metrics = evaluate_reconstruction(obj, truth, bbox=bbox)
        return {"amp_ssim": float(metrics["amp_ssim"]), "phase_ssim": float(metrics["phase_ssim"])}

    return score


class Trace:
    """Scores after each pass, with the solver's own seconds (scoring time taken out)."""

    def __init__(self, score: Callable[[np.ndarray], dict[str, float]]) -> None:
        self.score, self.rows, self.scoring = score, [], 0.0
        self.started = time.perf_counter()

    def __call__(self, iteration: int, obj: np.ndarray, *_: Any) -> None:
        now = time.perf_counter()
        row = {"iteration": iteration, "seconds": now - self.started - self.scoring, **self.score(obj)}
        self.rows.append(row)
        self.scoring += time.perf_counter() - now

    def summary(self, start: dict[str, float] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"curve": self.rows}
        if start is not None:
            out["start"] = start
        for threshold in THRESHOLDS:
            hit = next((r for r in self.rows if r["amp_ssim"] >= threshold), None)
            if start is not None and start["amp_ssim"] >= threshold:
                hit = {"iteration": 0, "seconds": 0.0}
            out[f"passes_to_{threshold}"] = None if hit is None else hit["iteration"]
            out[f"seconds_to_{threshold}"] = None if hit is None else round(hit["seconds"], 3)
        if self.rows:
            out["final"] = {k: self.rows[-1][k] for k in ("iteration", "seconds", "amp_ssim", "phase_ssim")}
        return out


def refine_trace(reader, start: np.ndarray, passes: int) -> dict[str, Any]:
    from ptycho_torch.refine import refine_object

    score = _score_fn(reader)
    scale = reader.nphotons / reader.mean_total_intensity()
    trace = Trace(score)
    result = refine_object(start, reader.probe, reader.positions,
                           lambda index: scale * np.square(reader.read_frames(index).astype(np.float64)),
                           passes, tolerance=0.0, progress=False, on_iteration=trace)
    summary = trace.summary(start=score(start))
    # what refinement hands back: the pass the held-out pixels liked best (may be before the last)
    summary["returned"] = {**score(result.object), "best_iteration": result.best_iteration,
                           "iterations": result.iterations, "stop_reason": result.stop_reason,
                           "kept_start": result.kept_start}
    return summary


def ptychi_trace(scan: Path, reader, epochs: int) -> dict[str, Any]:
    try:
        sys.path.insert(0, str(REPO / "bench"))
        import ptychi_lsqml  # noqa: F401  (imports ptychi lazily inside)

        trace = Trace(_score_fn(reader))
        ptychi_lsqml.run_lsqml(scan, epochs, on_epoch=lambda epoch, obj, seconds: trace(epoch, obj))
        return trace.summary()
    except Exception as error:  # ptychi missing or failing: say so, keep the rest of the results
        return {"skipped": f"{type(error).__name__}: {error}"}


def train_network(train_scan: Path, work: Path, recipe: dict[str, Any]) -> Path:
    from ptycho_torch.factory import create_training_payload
    from ptycho_torch.workflows.train import run_training

    overrides = {"train_data_file": str(train_scan), "output_dir": str(work / "run"),
                 "execution.accelerator": "cpu", "execution.logger_backend": "none",
                 "execution.enable_progress_bar": False, **recipe}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = create_training_payload(REPO / "examples" / "demo.yaml", overrides=overrides)
        return run_training(payload, resume="never").bundle_path


def network_object(bundle: Path, scan: Path, work: Path) -> tuple[np.ndarray, float]:
    from ptycho_torch.factory import create_inference_payload
    from ptycho_torch.workflows.infer import run_inference

    payload = create_inference_payload(overrides={"model_path": str(bundle), "test_data_file": str(scan),
                                                  "output_dir": str(work / "recon"), "execution.accelerator": "cpu"})
    started = time.perf_counter()
    result = run_inference(payload)
    return np.load(result.npz_path)["object"], time.perf_counter() - started


def sparse_training_file(work: Path, seeds: Sequence[int], sim: dict[str, Any]) -> Path:
    """Several sparse scans of other objects, stacked into one training file (gridsize 1)."""
    from ptycho_torch.data import open_scan, write_scan
    from ptycho_torch.simulate import SimulationConfig
    from ptycho_torch.simulate import write_scan as simulate_scan

    stacks: dict[str, list[np.ndarray]] = {"diffraction": [], "xcoords": [], "ycoords": []}
    for k, seed in enumerate(seeds):
        reader = open_scan(simulate_scan(SimulationConfig(**sim, seed=seed), work / f"sparse-train-{seed}.npz"))
        stacks["diffraction"].append(reader.read_frames(np.arange(reader.n)))
        stacks["xcoords"].append(reader.xcoords + 1000.0 * k)  # scans side by side: never neighbours
        stacks["ycoords"].append(reader.ycoords)
        probe, nphotons = reader.probe, reader.nphotons
    arrays = {key: np.concatenate(value) for key, value in stacks.items()}
    arrays["probeGuess"] = probe
    return write_scan(work / "sparse-train.npz", arrays, {"nphotons": nphotons})


CASES: dict[str, dict[str, Any]] = {
    "dense": {"sim": {"probe": "curved"}, "test_seed": 1, "train_seeds": None, "passes": 30, "ptychi_epochs": 20,
              "recipe": {}},
    "sparse": {"sim": {"probe": "curved", "object_size": 224, "step": 24.0, "nphotons": 1e4}, "test_seed": 100,
               "train_seeds": list(range(101, 117)), "passes": 60, "ptychi_epochs": 60,
               "recipe": {"nepochs": 25, "n_groups": 784}},
}
SMOKE = {"dense": {"sim": {"probe": "curved", "object_size": 112}, "test_seed": 1, "train_seeds": None, "passes": 2,
                   "ptychi_epochs": 0, "recipe": {"nepochs": 1, "n_groups": 8}}}


def run_case(name: str, case: dict[str, Any], work: Path, bundle: Path | None, scan: Path | None) -> dict[str, Any]:
    from ptycho_torch.data import open_scan
    from ptycho_torch.simulate import SimulationConfig, write_scan

    started = time.perf_counter()
    if scan is None:
        scan = write_scan(SimulationConfig(**case["sim"], seed=case["test_seed"]), work / f"{name}-test.npz")
    reader = open_scan(scan)
    train_seconds = None
    if bundle is None:
        train_file = scan if case["train_seeds"] is None else sparse_training_file(work, case["train_seeds"], case["sim"])
        t = time.perf_counter()
        bundle = train_network(train_file, work / name, case["recipe"])
        train_seconds = time.perf_counter() - t
    start, infer_seconds = network_object(bundle, scan, work / name)
    result: dict[str, Any] = {
        "n_positions": int(reader.n), "scan": {**case["sim"], "seed": case["test_seed"]},
        "train_seconds": train_seconds, "network_inference_seconds": infer_seconds,
        "network": _score_fn(reader)(start),
        "refine_from_network": refine_trace(reader, start, case["passes"]),
        "refine_from_flat": refine_trace(reader, np.ones(reader.object_guess.shape, np.complex64), case["passes"]),
        "refine_from_truth": refine_trace(reader, reader.object_guess.astype(np.complex64), case["passes"]),
    }
    if case["ptychi_epochs"]:
        result["ptychi_lsqml_from_flat"] = ptychi_trace(scan, reader, case["ptychi_epochs"])
    for threshold in THRESHOLDS:
        net, flat = (result[k][f"passes_to_{threshold}"] for k in ("refine_from_network", "refine_from_flat"))
        result[f"pass_ratio_network_over_flat_{threshold}"] = (
            None if net is None or flat is None or flat == 0 else round(net / flat, 3))
    result["wall_s"] = time.perf_counter() - started
    return result


def format_table(results: dict[str, Any]) -> str:
    lines = [f"{'case':<7} {'start':<22} {'amp0':>6} {'amp1':>6} {'->0.95 (passes, s)':>19} {'->0.99 (passes, s)':>19} "
             f"{'final amp':>9} {'final ph':>8}"]
    for name, case in results["cases"].items():
        for key, label in (("refine_from_network", "network + refinement"), ("refine_from_flat", "flat + refinement"),
                           ("refine_from_truth", "truth + refinement"), ("ptychi_lsqml_from_flat", "pty-chi LSQML, flat")):
            row = case.get(key)
            if row is None:
                continue
            if "skipped" in row:
                lines.append(f"{name:<7} {label:<22} skipped: {row['skipped'][:70]}")
                continue
            start = row.get("start", {}).get("amp_ssim", float("nan"))
            first = row["curve"][0]["amp_ssim"] if row.get("curve") else float("nan")
            cell = lambda t: f"{row[f'passes_to_{t}']}, {row[f'seconds_to_{t}']}"  # noqa: E731
            final = row.get("final", {})
            lines.append(f"{name:<7} {label:<22} {start:6.3f} {first:6.3f} {cell(0.95):>19} {cell(0.99):>19} "
                         f"{final.get('amp_ssim', float('nan')):9.4f} {final.get('phase_ssim', float('nan')):8.4f}")
            if "returned" in row:
                back = row["returned"]
                lines.append(f"{'':<7} {'  returned':<22} amp {back['amp_ssim']:.4f} phase {back['phase_ssim']:.4f}: "
                             f"pass {back['best_iteration']} of {back['iterations']} ({back['stop_reason']})")
        net = case["network"]
        lines.append(f"{name:<7} {'network alone':<22} {net['amp_ssim']:6.3f} (phase {net['phase_ssim']:.3f}); "
                     f"passes ratio network/flat to 0.99: {case['pass_ratio_network_over_flat_0.99']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--bundle", type=Path, help="A trained bundle for the (single) case, instead of training one.")
    parser.add_argument("--scan", type=Path, help="The scan for the (single) case, instead of simulating it.")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: proves the pipeline runs (seconds).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, help="Keep the scans and trained bundles here (default: a temporary folder).")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cases = SMOKE if args.smoke else {name: CASES[name] for name in args.cases}
    if (args.bundle or args.scan) and len(cases) != 1:
        parser.error("--bundle/--scan go with exactly one case")
    results: dict[str, Any] = {"torch": torch.__version__, "threads": args.threads, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="ptycho-refine-bench-") as tmp:
        work = Path(tmp) if args.workdir is None else args.workdir
        work.mkdir(parents=True, exist_ok=True)
        for name, case in cases.items():
            results["cases"][name] = run_case(name, case, work, args.bundle, args.scan)
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()

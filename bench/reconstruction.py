"""Reconstruction benchmark: simulate -> train -> infer -> SSIM/PSNR/FRC and speed, per case.

    python bench/reconstruction.py                          # cpu-small budget, both cases
    python bench/reconstruction.py --budget full --device gpu --repeats 3
    python bench/reconstruction.py --cases gs2-disk --out /tmp/r.json

Cases (simulated "lines" object, N = 64, nphotons 1e9, raster scan with 1 px jitter):

* ``gs2-disk``   gridsize 2, ideal disk probe   (published amplitude SSIM ~0.95)
* ``gs1-curved`` gridsize 1, curved-phase probe (published ~0.90)
* ``gs1-disk``   gridsize 1, ideal disk probe   (published ~0.62; not run by default)

Each case goes through the public API only: ``write_scan`` (simulation),
``create_training_payload`` + ``run_training``, ``create_inference_payload`` +
``run_inference`` (prediction, stitching, metrics against ``objectGuess``).

Which scan is reconstructed (``--test-scan``): ``same`` (default) reconstructs the training
scan itself, as the published figures do -- legitimate for a self-supervised method, which
never sees the ground truth.  ``separate`` reconstructs a second scan simulated with another
seed (a different object: a generalisation test, expect lower numbers).

Speed: training samples/s is timed by a callback from the end of the first training batch
(start-up, first-batch allocation and compilation excluded) to the end of training, and
counts the samples (groups of gridsize**2 patterns) of every later batch; epoch-end work
(checkpoints) is included.  Inference patterns/s is the workflow's own figure: diffraction
patterns through the network plus stitching (bundle loading and file writes excluded; for
gridsize 2 each position is predicted once per group it belongs to).  With ``--repeats R``
the whole case runs R times and the speed numbers are medians; quality is from the first run
(training is deterministic, so the runs agree).  Results go to stdout and to JSON
(``bench/results/reconstruction.json`` by default; ``bench/results`` is git-ignored).

Budgets: ``smoke`` (seconds; only proves the pipeline runs, its quality means nothing),
``cpu-small`` (about 2 min for both cases on 2 CPU cores), ``cpu-long`` (about 21 min per
case on 2 CPU cores: upstream's integer grid, 6000 steps), ``full`` (a GPU: more data, epochs,
and the default network width n_filters_scale 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "reconstruction.json"

N = 64
NPHOTONS = 1e9

PUBLISHED = {
    "gs2-disk": {"amp_ssim": 0.95},
    "gs1-curved": {"amp_ssim": 0.90},
    "gs1-disk": {"amp_ssim": 0.62},
    "inference_patterns_per_s_gpu_n64": 6100.0,
    "note": "PtychoPINN paper figures (docs/physics.md): lines, N=64, nphotons 1e9; "
    "published inference speed excludes stitching, ours includes it",
}
"""Published figures printed beside ours (docs/physics.md, "Published figures")."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: the gridsize and the probe kind of the simulated scan."""

    name: str
    gridsize: int
    probe: str


CASES = {
    "gs2-disk": Case("gs2-disk", 2, "disk"),
    "gs1-curved": Case("gs1-curved", 1, "curved"),
    "gs1-disk": Case("gs1-disk", 1, "disk"),
}
DEFAULT_CASES = ("gs2-disk", "gs1-curved")


@dataclass(frozen=True)
class Budget:
    """How much data and training a run gets.

    Attributes:
        object_size: side M of the simulated (M, M) object, pixels.
        step_px: raster step, pixels (positions = grid that fits in M).
        nepochs: training epochs.
        n_groups: training samples (groups of gridsize**2 positions) drawn from the scan.
        batch_size: samples per optimisation step.
        n_filters_scale: CNN width multiplier s (channels 32s, 64s, 128s).
        learning_rate: Adam learning rate.
        inference_batch_size: groups per forward pass at inference.
        jitter_px: raster jitter, pixels (0 gives integer positions, as in upstream's
            published grid, where neighbours are whole pixels apart).
    """

    object_size: int
    step_px: float
    nepochs: int
    n_groups: int
    batch_size: int
    n_filters_scale: int
    learning_rate: float
    inference_batch_size: int
    jitter_px: float = 1.0


# cpu-small: 16 x 16 = 256 positions (step 6 px on a 160 px object), one group per position,
# 16 epochs of the narrow network: about 1 min per case on 2 CPU cores.
# cpu-long: 49 x 49 = 2401 positions (step 4 px on a 256 px object, no jitter, as upstream's
# grid), 2400 groups, 40 epochs at batch 16 (6000 steps): about 21 min for gs2 on 2 CPU cores.
# full: 41 x 41 = 1681 positions (step N/8 on a 392 px object), 1600 groups (distinct seeds for
# both gridsizes), 60 epochs at upstream's learning rate and width: 6000 steps per case.
BUDGETS = {
    "smoke": Budget(object_size=128, step_px=8.0, nepochs=1, n_groups=12, batch_size=4, n_filters_scale=1,
                    learning_rate=1e-3, inference_batch_size=64),
    "cpu-small": Budget(object_size=160, step_px=6.0, nepochs=16, n_groups=256, batch_size=4, n_filters_scale=1,
                        learning_rate=1e-3, inference_batch_size=64),
    "cpu-long": Budget(object_size=256, step_px=4.0, nepochs=40, n_groups=2400, batch_size=16, n_filters_scale=1,
                       learning_rate=1e-3, inference_batch_size=64, jitter_px=0.0),
    "full": Budget(object_size=392, step_px=8.0, nepochs=60, n_groups=1600, batch_size=8, n_filters_scale=2,
                   learning_rate=1e-3, inference_batch_size=256),
}

METRIC_KEYS = ("amp_ssim", "phase_ssim", "amp_psnr_db", "phase_psnr_db", "amp_frc_cutoff_cpp", "phase_frc_cutoff_cpp")
"""Quality metrics copied from the inference workflow's evaluation."""

CASE_KEYS = METRIC_KEYS + (
    "train_samples_per_s", "train_patterns_per_s", "train_fit_s", "train_steps",
    "infer_patterns_per_s", "infer_positions_per_s", "infer_wall_s", "n_positions", "wall_s",
)
"""Numeric keys every case in the JSON carries (finite numbers)."""


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _batch_timer():
    """A Lightning callback timing the training batches after the first (see module doc)."""
    from lightning.pytorch import Callback

    class BatchTimer(Callback):
        def __init__(self) -> None:
            self.started: float | None = None
            self.finished: float | None = None
            self.samples = 0
            self.batches = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.started is None:
                _synchronize()
                self.started = time.perf_counter()
                return
            self.samples += int(batch["diffraction"].shape[0])
            self.batches += 1

        def on_train_end(self, trainer, pl_module) -> None:
            _synchronize()
            self.finished = time.perf_counter()

        def samples_per_s(self) -> float:
            """Samples per second after the first batch; nan if only one batch ran."""
            if self.started is None or self.finished is None or self.samples == 0:
                return float("nan")
            return self.samples / max(self.finished - self.started, 1e-9)

    return BatchTimer()


def device_description(accelerator: str) -> str:
    """The GPU's name, or the CPU model and torch's thread count."""
    import torch

    if accelerator == "gpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads ({os.cpu_count()} cores visible)"


def simulate(case: Case, budget: Budget, path: Path, seed: int) -> tuple[Path, int]:
    """Write the case's simulated scan to ``path``; returns (path, number of positions)."""
    from ptycho_torch.simulate import SimulationConfig, write_scan

    cfg = SimulationConfig(object="lines", object_size=budget.object_size, N=N, probe=case.probe, scan="raster",
                           step=budget.step_px, jitter=budget.jitter_px, nphotons=NPHOTONS, seed=seed)
    return write_scan(cfg, path), cfg.n_positions


def train(case: Case, budget: Budget, scan: Path, out: Path, accelerator: str, seed: int):
    """Train through the factory and the workflow; returns (TrainingResult, BatchTimer, fit seconds)."""
    from ptycho_torch.factory import create_training_payload
    from ptycho_torch.workflows.train import run_training

    config = {
        "train_data_file": str(scan), "output_dir": str(out), "nepochs": budget.nepochs,
        "n_groups": budget.n_groups, "batch_size": budget.batch_size, "learning_rate": budget.learning_rate,
        "seed": seed, "model": {"gridsize": case.gridsize, "n_filters_scale": budget.n_filters_scale},
    }
    execution = {"accelerator": accelerator, "logger_backend": "none", "enable_progress_bar": False}
    payload = create_training_payload(config=config, execution=execution)
    timer = _batch_timer()
    started = time.perf_counter()
    result = run_training(payload, extra_callbacks=[timer], resume="never")
    return result, timer, time.perf_counter() - started


def infer(bundle: Path, scan: Path, out: Path, accelerator: str, batch_size: int):
    """Reconstruct ``scan`` with ``bundle`` through the factory and the workflow; (result, wall s)."""
    from ptycho_torch.factory import create_inference_payload
    from ptycho_torch.workflows.infer import run_inference

    payload = create_inference_payload(
        config={"model_path": str(bundle), "test_data_file": str(scan), "output_dir": str(out)},
        execution={"accelerator": accelerator, "inference_batch_size": batch_size},
    )
    started = time.perf_counter()
    result = run_inference(payload)
    return result, time.perf_counter() - started


def run_case(case: Case, budget: Budget, work: Path, accelerator: str, repeats: int, test_scan: str,
             seed: int) -> dict[str, Any]:
    """Simulate, then train + infer ``repeats`` times; quality of run 0, medians of the speeds."""
    started = time.perf_counter()
    train_scan, n_train = simulate(case, budget, work / f"{case.name}-train.npz", seed)
    if test_scan == "same":
        eval_scan, n_eval = train_scan, n_train
    else:
        eval_scan, n_eval = simulate(case, budget, work / f"{case.name}-test.npz", seed + 1)
    runs = []
    for r in range(repeats):
        result, timer, fit_s = train(case, budget, train_scan, work / f"{case.name}-run{r}", accelerator, seed)
        inference, infer_wall = infer(result.bundle_path, eval_scan, work / f"{case.name}-recon{r}", accelerator,
                                      budget.inference_batch_size)
        n_patterns = inference.n_patterns
        elapsed = n_patterns / inference.patterns_per_s
        runs.append({
            "metrics": inference.metrics,
            "train_samples_per_s": timer.samples_per_s(),
            "train_fit_s": fit_s,
            "train_steps": result.global_step,
            "infer_patterns_per_s": inference.patterns_per_s,
            "infer_positions_per_s": n_eval / elapsed,
            "infer_wall_s": infer_wall,
            "final_train_loss": result.metrics.get("train_loss_epoch", float("nan")),
        })
    first = runs[0]["metrics"]
    median = lambda key: float(statistics.median(run[key] for run in runs))  # noqa: E731
    out: dict[str, Any] = {key: float(first[key]) for key in METRIC_KEYS}
    out.update({
        "gridsize": case.gridsize, "probe": case.probe, "test_scan": test_scan,
        "n_positions": n_train, "n_eval_positions": n_eval,
        "train_samples_per_s": median("train_samples_per_s"),
        "train_patterns_per_s": median("train_samples_per_s") * case.gridsize**2,
        "train_fit_s": median("train_fit_s"), "train_steps": runs[0]["train_steps"],
        "infer_patterns_per_s": median("infer_patterns_per_s"),
        "infer_positions_per_s": median("infer_positions_per_s"),
        "infer_wall_s": median("infer_wall_s"),
        "final_train_loss": runs[0]["final_train_loss"],
        "amp_ssim_runs": [float(run["metrics"]["amp_ssim"]) for run in runs],
        "published_amp_ssim": PUBLISHED[case.name]["amp_ssim"],
        "wall_s": time.perf_counter() - started,
    })
    return out


def format_table(results: dict[str, Any]) -> str:
    """A fixed-width table of the cases, with the published amplitude SSIM beside ours."""
    head = (f"{'case':<11} {'amp SSIM':>8} {'(publ.)':>7} {'ph SSIM':>7} {'amp PSNR':>8} {'ph PSNR':>7} "
            f"{'amp FRC':>7} {'ph FRC':>6} {'train smp/s':>11} {'infer pat/s':>11} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for name, c in results["cases"].items():
        lines.append(
            f"{name:<11} {c['amp_ssim']:8.3f} {c['published_amp_ssim']:7.2f} {c['phase_ssim']:7.3f} "
            f"{c['amp_psnr_db']:8.2f} {c['phase_psnr_db']:7.2f} {c['amp_frc_cutoff_cpp']:7.3f} "
            f"{c['phase_frc_cutoff_cpp']:6.3f} {c['train_samples_per_s']:11.1f} {c['infer_patterns_per_s']:11.1f} "
            f"{c['wall_s']:7.1f}")
    lines.append(f"PSNR in dB (amplitude peak = reference max; phase peak = reference range); FRC half-bit cutoff "
                 f"in cycles/pixel.  Published inference: ~{PUBLISHED['inference_patterns_per_s_gpu_n64']:.0f} "
                 "patterns/s at N=64 on one GPU, stitching excluded (ours includes it).")
    lines.append(f"device: {results['device']}; budget: {results['budget']}; total wall {results['wall_s']:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu-small",
                        help="cpu-small: ~2 min on 2 CPU cores; cpu-long: ~21 min per case on 2 CPU cores; full: a GPU; smoke: seconds, for the test.")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(DEFAULT_CASES),
                        help=f"Cases to run (default: {' '.join(DEFAULT_CASES)}).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs per case; speed numbers are medians.")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: the GPU when there is one, else the CPU.")
    parser.add_argument("--test-scan", choices=("same", "separate"), default="same",
                        help="same: reconstruct the training scan (as published); separate: a scan of another seed.")
    parser.add_argument("--seed", type=int, default=0, help="Simulation and training seed.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep scans, bundles and reconstructions here.")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table, write the JSON, and return the results."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    import torch

    from ptycho_torch.config.execution import resolve_accelerator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accelerator = resolve_accelerator(args.device)
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--device gpu: no CUDA device is available")
    budget = BUDGETS[args.budget]
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no model summaries per run
    started = time.perf_counter()
    results: dict[str, Any] = {
        "budget": args.budget, "budget_settings": asdict(budget), "N": N, "nphotons": NPHOTONS,
        "device": device_description(accelerator), "accelerator": accelerator, "torch": torch.__version__,
        "repeats": args.repeats, "test_scan": args.test_scan, "seed": args.seed, "published": PUBLISHED, "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="ptycho-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.cases:
            results["cases"][name] = run_case(CASES[name], budget, work, accelerator, args.repeats,
                                              args.test_scan, args.seed)
    results["wall_s"] = time.perf_counter() - started
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)

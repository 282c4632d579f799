"""Quality-per-step benchmark: which training recipe reconstructs best after a fixed number of steps.

    python bench/quality_per_step.py --recipes cnn resunet --steps 1000 --seeds 0 1 --cases gs1-curved
    python bench/quality_per_step.py --recipes resunet+cos --steps 5000 --seeds 0 1 2 3 4
    python bench/quality_per_step.py --smoke                  # seconds: proves the pipeline runs

Cases (simulated 'lines' object, N = 64, 224 px object, raster step N/8 with 1 px jitter:
400 positions, all of them used as training groups; the same files for every recipe):

* ``gs1-curved``  gridsize 1, curved probe, 1e9 photons (the README demo's scan)
* ``gs2-disk``    gridsize 2, disk probe,   1e9 photons
* ``gs1-lowdose`` gridsize 1, curved probe, 1e4 photons

A recipe is a base (the architecture and its settings) plus ``+``-joined modifiers, e.g.
``resunet+cos+clip1``; ``--list`` prints them all.  ``+bf16`` trains and reconstructs under
``precision: bf16-mixed`` (``+fp32``: ``32-true``), so ``--recipes resunet resunet+bf16``
compares the precisions at equal steps on the same scans in one run.  Every run goes through the public API
(``write_scan``, ``create_training_payload`` + ``run_training``, ``create_inference_payload`` +
``run_inference``), reconstructs the training scan (self-supervised: the network never sees
the ground truth) and scores the stitched object against ``objectGuess``.

Budgets are optimisation steps: ``nepochs = steps * batch_size / n_groups`` (so a recipe with a
larger batch sees more samples in the same number of steps).  A run *collapsed* when the
training's collapse guard fired (an output branch went constant) or when the stitched phase or
amplitude is flat (spread below 1e-3); its SSIMs are still reported (NaN when training was
stopped).  Speed: training samples/s from the end of the first batch to the end of training
(bench/reconstruction.py's timer); wall: the whole run (training, inference, metrics).
``--stitching both`` also scores the old central-crop stitching of the same bundle (extra
``*_central_crop`` keys in the JSON; the table shows the probe-weighted, default, one).

Screening variants (bases such as ``resunet-bn``) swap the 'resunet' entry of the generator
registry inside this process for the run: they are not canonical architectures; a bundle
written by one is only loadable in the same process.  Only the variants that win become
canonical (docs/architectures.md).

Output: a table of medians and ranges per (case, recipe, steps) on stdout, and JSON with every
run under ``bench/results/quality_per_step.json`` (git-ignored).  ``--append`` adds the runs to
an existing JSON, so a sweep can be split into several short commands.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "quality_per_step.json"
FLAT_SPREAD = 1e-3


@dataclass(frozen=True)
class Case:
    """One benchmark scan."""

    name: str
    gridsize: int
    probe: str
    nphotons: float


CASES = {
    "gs1-curved": Case("gs1-curved", 1, "curved", 1e9),
    "gs2-disk": Case("gs2-disk", 2, "disk", 1e9),
    "gs1-lowdose": Case("gs1-lowdose", 1, "curved", 1e4),
}


@dataclass
class Recipe:
    """What a run trains with: config overrides, generator variant, extra callbacks."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)  # e.g. precision, for training and inference
    generator_kwargs: dict[str, Any] | None = None  # None: the registry's class as it is
    callbacks: list[Callable[[int], Any]] = field(default_factory=list)  # each: total steps -> callback


# --- bases: architecture and its settings -------------------------------------------------
BASES: dict[str, dict[str, Any]] = {
    "cnn": {"model": {"architecture": "cnn", "n_filters_scale": 1}},
    "cnn2": {"model": {"architecture": "cnn", "n_filters_scale": 2}},
    "resunet": {"model": {"architecture": "resunet", "n_filters_scale": 1}},
    "resunet-bn": {"model": {"architecture": "resunet", "n_filters_scale": 1}, "generator_kwargs": {"norm": "batch"}},
    "resunet-nonorm": {"model": {"architecture": "resunet", "n_filters_scale": 1}, "generator_kwargs": {"norm": "none"}},
    "resunet-gelu": {"model": {"architecture": "resunet", "n_filters_scale": 1}, "generator_kwargs": {"act": "gelu"}},
    "resunet-fno": {"model": {"architecture": "resunet", "n_filters_scale": 1}, "generator_kwargs": {"spectral_modes": 4}},
    "resunet-light": {"model": {"architecture": "resunet", "n_filters_scale": 1},
                      "generator_kwargs": {"full_res_blocks": False}},
    "resunet-head1": {"model": {"architecture": "resunet", "n_filters_scale": 1}, "generator_kwargs": {"head_init_scale": 1.0}},
}


def _mae_warmup(fraction: float) -> Callable[[int], Any]:
    """Factory: a callback training with the MAE alone for the first ``fraction`` of the steps."""

    def make(total_steps: int):
        from lightning.pytorch import Callback

        switch = int(total_steps * fraction)

        class MAEWarmup(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if not hasattr(self, "mode"):
                    self.mode = pl_module.loss_cfg["torch_loss_mode"]
                pl_module.loss_cfg["torch_loss_mode"] = "mae" if trainer.global_step < switch else self.mode

        return MAEWarmup()

    return make


# --- modifiers: applied on top of a base, left to right -----------------------------------
MODIFIERS: dict[str, dict[str, Any]] = {
    "cos": {"config": {"scheduler": "WarmupCosine", "lr_warmup_epochs": 1, "lr_min_ratio": 0.02}},
    "lr2e-3": {"config": {"learning_rate": 2e-3}},
    "lr3e-3": {"config": {"learning_rate": 3e-3}},
    "lr5e-4": {"config": {"learning_rate": 5e-4}},
    "clip1": {"config": {"gradient_clip_val": 1.0}},
    "b8": {"config": {"batch_size": 8}},
    "b16": {"config": {"batch_size": 16}},
    "b2": {"config": {"batch_size": 2}},
    "s2": {"model": {"n_filters_scale": 2}},
    "maewarm": {"callbacks": [_mae_warmup(0.1)]},
    "adamw": {"config": {"optimizer": "adamw", "weight_decay": 1e-4}},
    # the physics estimate beside the amplitudes (ModelConfig.estimate_iters, physics/estimate.py;
    # default 20, 5 before); est0 is the amplitudes alone, the input before the estimate existed
    "est0": {"model": {"estimate_iters": 0}},
    "est1": {"model": {"estimate_iters": 1}},
    "est3": {"model": {"estimate_iters": 3}},
    "est5": {"model": {"estimate_iters": 5}},
    "est10": {"model": {"estimate_iters": 10}},
    "est20": {"model": {"estimate_iters": 20}},
    "est50": {"model": {"estimate_iters": 50}},
    # precision of training and inference (the network under autocast, the physics in float32)
    "bf16": {"execution": {"precision": "bf16-mixed"}},
    "fp32": {"execution": {"precision": "32-true"}},
}


def parse_recipe(spec: str) -> Recipe:
    """``base[+modifier...]`` -> :class:`Recipe` (SystemExit naming the valid parts otherwise)."""
    base, *mods = spec.split("+")
    if base not in BASES:
        raise SystemExit(f"unknown recipe base {base!r}; valid: {sorted(BASES)}")
    recipe = Recipe(spec, config={}, model=dict(BASES[base].get("model", {})),
                    generator_kwargs=BASES[base].get("generator_kwargs"))
    for mod in mods:
        if mod not in MODIFIERS:
            raise SystemExit(f"unknown recipe modifier {mod!r}; valid: {sorted(MODIFIERS)}")
        recipe.config.update(MODIFIERS[mod].get("config", {}))
        recipe.model.update(MODIFIERS[mod].get("model", {}))
        recipe.execution.update(MODIFIERS[mod].get("execution", {}))
        recipe.callbacks += MODIFIERS[mod].get("callbacks", [])
    return recipe


# --- data ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Scan size and groups (the step count is given separately)."""

    object_size: int
    n_groups: int
    step_px: float | None = None  # None: N/8


FULL = Budget(object_size=224, n_groups=400)
SMOKE = Budget(object_size=128, n_groups=12, step_px=8.0)
SMOKE_STEPS = 6


def simulate(case: Case, budget: Budget, path: Path, seed: int) -> Path:
    """Write the case's scan (cached by name: the same file for every recipe of one invocation)."""
    from ptycho_torch.simulate import SimulationConfig, write_scan

    if path.is_file():
        return path
    cfg = SimulationConfig(object="lines", object_size=budget.object_size, N=64, probe=case.probe, scan="raster",
                           step=budget.step_px, nphotons=case.nphotons, seed=seed)
    return write_scan(cfg, path)


@functools.lru_cache(maxsize=1)
def _recon_helpers():
    sys.path.insert(0, str(BENCH_DIR))
    import reconstruction  # bench/reconstruction.py: the batch timer and the device string

    return reconstruction


def _flat(npz_path: Path) -> dict[str, float]:
    """Spread of the stitched amplitude (std/mean) and phase (std, rad) over the scanned area."""
    import numpy as np

    with np.load(npz_path) as data:
        obj, weights = np.asarray(data["object"]), np.asarray(data["weights"])
    lit = np.isfinite(obj) & (weights > 0.1 * float(weights.max()))
    vals = obj[lit]
    if vals.size == 0:
        return {"amplitude": 0.0, "phase": 0.0}
    amp = np.abs(vals)
    return {"amplitude": float(amp.std() / max(amp.mean(), 1e-12)), "phase": float(np.angle(vals).std())}


def run_one(case: Case, recipe: Recipe, steps: int, seed: int, scan: Path, work: Path, budget: Budget,
            stitchings: Sequence[str] = ("probe_weighted",)) -> dict[str, Any]:
    """Train one recipe for ``steps`` steps with training seed ``seed``, reconstruct, score."""
    from ptycho_torch.errors import TrainingCollapseError
    from ptycho_torch.factory import create_inference_payload, create_training_payload
    from ptycho_torch.model import registry
    from ptycho_torch.workflows.infer import run_inference
    from ptycho_torch.workflows.train import run_training

    batch = int(recipe.config.get("batch_size", 4))
    nepochs = max(1, round(steps * batch / budget.n_groups))
    config = {
        "train_data_file": str(scan), "output_dir": str(work / "run"), "nepochs": nepochs,
        "n_groups": budget.n_groups, "batch_size": batch, "learning_rate": 1e-3, "seed": seed,
        **{k: v for k, v in recipe.config.items() if k != "batch_size"},
        "model": {"gridsize": case.gridsize, **recipe.model},
    }
    execution = {"accelerator": "cpu", "logger_backend": "none", "enable_progress_bar": False, **recipe.execution}
    saved = registry.GENERATORS["resunet"]
    if recipe.generator_kwargs:
        registry.GENERATORS["resunet"] = functools.partial(saved, **recipe.generator_kwargs)
    started = time.perf_counter()
    row: dict[str, Any] = {"case": case.name, "recipe": recipe.name, "steps": steps, "seed": seed,
                           "batch_size": batch, "nepochs": nepochs,
                           "precision": recipe.execution.get("precision", "default")}
    try:
        payload = create_training_payload(config=config, execution=execution)
        timer = _recon_helpers()._batch_timer()
        callbacks = [timer] + [make(steps) for make in recipe.callbacks]
        try:
            result = run_training(payload, extra_callbacks=callbacks, resume="never")
        except TrainingCollapseError as err:
            row.update(amp_ssim=float("nan"), phase_ssim=float("nan"), collapsed=True, guard=err.one_line(),
                       train_steps=float("nan"), samples_per_s=timer.samples_per_s(),
                       wall_s=time.perf_counter() - started)
            return row
        train_s = time.perf_counter() - started
        inferences = {
            mode: run_inference(create_inference_payload(
                config={"model_path": str(result.bundle_path), "test_data_file": str(scan),
                        "output_dir": str(work / f"recon-{mode}"), "stitching": mode},
                execution={"accelerator": "cpu", "inference_batch_size": 64, **recipe.execution},
            ))
            for mode in stitchings
        }
        inference = inferences[stitchings[0]]
    finally:
        registry.GENERATORS["resunet"] = saved
    spread = _flat(inference.npz_path)
    row.update(
        amp_ssim=float(inference.metrics["amp_ssim"]), phase_ssim=float(inference.metrics["phase_ssim"]),
        collapsed=bool(min(spread.values()) < FLAT_SPREAD), spread=spread, train_steps=result.global_step,
        samples_per_s=timer.samples_per_s(), train_s=train_s, wall_s=time.perf_counter() - started,
        amplitude_png=str(inference.amplitude_png), stitching=stitchings[0],
    )
    for mode, other in inferences.items():
        row[f"amp_ssim_{mode}"] = float(other.metrics["amp_ssim"])
        row[f"phase_ssim_{mode}"] = float(other.metrics["phase_ssim"])
    return row


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians and ranges per (case, recipe, steps), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["case"], run["recipe"], run["steps"]), []).append(run)
    rows = []
    for (case, recipe, steps), members in groups.items():
        def stats(key: str) -> tuple[float, float, float]:
            vals = [m[key] for m in members if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])]
            if not vals:
                return (float("nan"),) * 3
            return float(statistics.median(vals)), float(min(vals)), float(max(vals))

        rows.append({
            "case": case, "recipe": recipe, "steps": steps, "seeds": sorted(m["seed"] for m in members),
            "amp_ssim": stats("amp_ssim"), "phase_ssim": stats("phase_ssim"),
            "collapses": sum(bool(m["collapsed"]) for m in members),
            "samples_per_s": stats("samples_per_s")[0], "wall_s": stats("wall_s")[0],
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'case':<11} {'recipe':<26} {'steps':>5} {'seeds':>5} {'amp SSIM med [min,max]':>24} "
            f"{'phase SSIM med [min,max]':>24} {'coll':>4} {'smp/s':>6} {'wall s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        a, p = r["amp_ssim"], r["phase_ssim"]
        lines.append(
            f"{r['case']:<11} {r['recipe']:<26} {r['steps']:>5} {len(r['seeds']):>5} "
            f"{a[0]:7.3f} [{a[1]:.3f},{a[2]:.3f}]   {p[0]:7.3f} [{p[1]:.3f},{p[2]:.3f}]   "
            f"{r['collapses']:>4} {r['samples_per_s']:6.1f} {r['wall_s']:6.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["gs1-curved", "gs2-disk"])
    parser.add_argument("--recipes", nargs="+", default=["cnn", "resunet"], help="base[+modifier...]; see --list.")
    parser.add_argument("--steps", nargs="+", type=int, default=[1000], help="Step budgets (e.g. 1000 2000 5000).")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="Training seeds (the scans stay fixed).")
    parser.add_argument("--data-seed", type=int, default=0, help="Simulation seed of the scans.")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    parser.add_argument("--smoke", action="store_true", help=f"Tiny scan, {SMOKE_STEPS} steps: seconds, for the test.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file.")
    parser.add_argument("--append", action="store_true", help="Add the runs to the runs already in --out.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep scans, bundles and PNGs here.")
    parser.add_argument("--stitching", choices=("probe_weighted", "central_crop", "both"), default="probe_weighted",
                        help="How the scored object is stitched; 'both' scores probe_weighted (the table) and "
                             "central_crop (extra keys in the JSON).")
    parser.add_argument("--list", action="store_true", help="Print the recipe bases and modifiers and exit.")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table, write the JSON, return the results."""
    args = build_parser().parse_args(argv)
    if args.list:
        print("bases:", " ".join(sorted(BASES)))
        print("modifiers:", " ".join(sorted(MODIFIERS)))
        return {}
    recipes = [parse_recipe(spec) for spec in args.recipes]
    import torch

    torch.set_num_threads(args.threads)
    budget = SMOKE if args.smoke else FULL
    steps_list = [SMOKE_STEPS] if args.smoke else args.steps
    stitchings = ("probe_weighted", "central_crop") if args.stitching == "both" else (args.stitching,)
    if any(s < 1 for s in steps_list):
        raise SystemExit("--steps must be >= 1")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    previous = json.loads(args.out.read_text())["runs"] if args.append and args.out.is_file() else []
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()

    def results() -> dict[str, Any]:
        all_runs = previous + runs
        return {
            "device": _recon_helpers().device_description("cpu"), "threads": args.threads, "torch": torch.__version__,
            "smoke": args.smoke, "data_seed": args.data_seed, "stitching": list(stitchings), "wall_s": time.perf_counter() - started,
            "summary": summarise(all_runs), "runs": all_runs,
        }

    def write() -> None:  # after every run: a sweep cut short by a time limit keeps what it did
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = args.out.with_suffix(".tmp")
        tmp_out.write_text(json.dumps(results(), indent=2, default=float) + "\n")
        tmp_out.replace(args.out)

    with tempfile.TemporaryDirectory(prefix="ptycho-qps-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for case_name in args.cases:
            case = CASES[case_name]
            scan = simulate(case, budget, work / f"{case.name}-{'smoke' if args.smoke else 'full'}-d{args.data_seed}.npz",
                            args.data_seed)
            for steps in steps_list:
                for recipe in recipes:
                    for seed in args.seeds:
                        run_dir = work / f"{case.name}-{recipe.name}-{steps}-s{seed}"
                        row = run_one(case, recipe, steps, seed, scan, run_dir, budget, stitchings)
                        runs.append(row)
                        write()
                        print(f"  {case.name} {recipe.name} {steps} steps seed {seed}: amp {row['amp_ssim']:.3f} "
                              f"phase {row['phase_ssim']:.3f} collapsed {row['collapsed']} "
                              f"{row['samples_per_s']:.1f} smp/s {row['wall_s']:.0f} s", flush=True)
    out = results()
    write()
    print(format_table(out["summary"]))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)

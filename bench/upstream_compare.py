"""This project against upstream PtychoPINN's torch model, interleaved in one process, JSON out.

    python bench/upstream_compare.py --upstream /path/to/PtychoPINN     # the full table, minutes on 2 cores
    PTYCHOPINN_UPSTREAM=/path/to/PtychoPINN python bench/upstream_compare.py
    python bench/upstream_compare.py --smoke                            # seconds; CI (upstream optional)

Upstream (github.com/hoidn/PtychoPINN) is not a dependency and none of its code is in
this repository: it is imported only from a checkout given with ``--upstream PATH`` or
the ``PTYCHOPINN_UPSTREAM`` environment variable, or from an installed ``ptychopinn``
distribution.  PATH is the directory that holds upstream's ``ptycho_torch/`` package.
Both packages are called ``ptycho_torch``, so upstream's is imported under that name
for the moment of its import only and this project's modules are put back afterwards.
When no upstream is found the project's rows are measured alone and the run says so
(exit 0); a PATH that is not an importable checkout is an error (exit 2, one line).

Rows (N = 64, the same width for both: ``--width``, default n_filters_scale 2; synthetic
inputs of the right shapes; ``--threads`` torch threads, default 2):

* training, gridsize 1 and 2, batch 16: groups/s of full optimiser steps.  Project:
  ``PtychoPINNModule.compute_loss``, backward, Adam step.  Upstream: its
  ``PtychoPINN_Lightning.compute_loss`` (its model, its Poisson loss), backward, and the
  Adam optimiser of its ``configure_optimizers`` stepped as its ``training_step`` does
  (outside a Trainer, so without its ``self.log`` call).
* inference forward, gridsize 1 and 2, batch 16 and 64: patterns/s (groups x g^2) under
  ``torch.inference_mode``.  Project: ``predict_patches`` (network plus, at g > 1, the
  overlap constraint).  Upstream: ``forward_predict``, what its reconstruction calls
  (network only; it applies no constraint at inference).  No stitching on either side.
* the project under bf16 autocast (network in bf16, physics in float32) for every row,
  with its speed-up over the project's fp32.
* the project once per entry of ``--architectures``: a generator name (built at the
  project's defaults, which include the physics estimate of ``model.estimate_iters``
  iterations in front of the network), or ``NAME+estK`` with K estimate iterations
  (``+est0``: the network on the amplitudes alone).  The default list is ``resunet`` (the default since issue 8),
  ``cnn`` and ``cnn+est0``: the original encoder + two decoders without the estimate,
  which is what upstream's model is, so "equal width" compares like with like.

Each model is built at its own defaults with only N, gridsize, width (and, for the
project, the architecture) set (upstream: ``object_big`` true for g > 1, as its data
pipeline requires; its CBAM encoder and ``silu`` amplitude head are its defaults).
``--warmup`` untimed steps per model, the last one timed to pick how many steps make
about ``--seconds`` (or exactly ``--steps``); then ``--repeats`` rounds: in each round
every row times each contender once, the order of the contenders rotating from round to
round so that drift in the machine's speed falls on all of them.  Medians over rounds
are reported, with every sample; the 1-minute load average before and after is recorded
to show whether the machine was otherwise busy.  ``--profile`` adds a torch.profiler
table of the project's gridsize-2 training step per architecture (top operators by self
CPU time).  Results go to stdout and to JSON (``bench/results/upstream_compare.json`` by
default, written atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "upstream_compare.json"
ENV_VAR = "PTYCHOPINN_UPSTREAM"
PACKAGE = "ptycho_torch"  # both projects' package name
UPSTREAM = "upstream/fp32"


class UpstreamUnusable(Exception):
    """The upstream location given cannot be imported; the message is the one-line reason."""


# --- finding and importing upstream ---------------------------------------------------------


def locate_upstream(arg: str | None) -> tuple[Path | None, str]:
    """(directory holding upstream's ``ptycho_torch/``, where it came from), or (None, '')."""
    if arg:
        return Path(arg).expanduser(), "--upstream"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), ENV_VAR
    try:
        dist = importlib.metadata.distribution("ptychopinn")
    except importlib.metadata.PackageNotFoundError:
        return None, ""
    direct = dist.read_text("direct_url.json")  # editable installs point at their checkout
    if direct and json.loads(direct).get("url", "").startswith("file://"):
        root = Path(json.loads(direct)["url"][len("file://"):])
        if (root / PACKAGE / "model.py").is_file():
            return root, "installed ptychopinn (editable)"
    root = Path(dist.locate_file(""))
    if (root / PACKAGE / "model.py").is_file():
        return root, "installed ptychopinn"
    return None, ""


def _own_modules() -> dict:
    return {k: v for k, v in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".")}


def import_upstream(root: Path) -> SimpleNamespace:
    """Import upstream's ``ptycho_torch.{model,config_params,helper}`` from ``root``.

    This project's ``ptycho_torch`` modules are set aside while upstream's package is
    imported from its own directory (so nothing on ``sys.path`` or in an editable-install
    finder can substitute this project's files) and restored afterwards; the upstream
    module objects keep working because their globals already hold what they imported.
    """
    pkg = root / PACKAGE
    if not (pkg / "model.py").is_file() or not (pkg / "__init__.py").is_file():
        raise UpstreamUnusable(
            f"upstream location {root}: expected a directory holding {PACKAGE}/__init__.py and "
            f"{PACKAGE}/model.py (a PtychoPINN checkout), found {'no such directory' if not root.is_dir() else 'neither'}; "
            f"hint: pass the checkout's top directory with --upstream or {ENV_VAR}")
    mine = _own_modules()
    for name in mine:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(PACKAGE, pkg / "__init__.py", submodule_search_locations=[str(pkg)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            model = importlib.import_module(PACKAGE + ".model")
            config = importlib.import_module(PACKAGE + ".config_params")
            helper = importlib.import_module(PACKAGE + ".helper")
    except Exception as exc:  # a missing dependency of upstream's, a syntax error, ...
        raise UpstreamUnusable(
            f"upstream location {root}: importing its {PACKAGE}.model failed ({type(exc).__name__}: {exc}); "
            "hint: install what it imports (lightning, its train_utils' imports) or point at a complete checkout") from exc
    finally:
        for name in list(_own_modules()):
            del sys.modules[name]
        sys.modules.update(mine)
    return SimpleNamespace(model=model, config=config, helper=helper, root=root)


# --- inputs and contenders ----------------------------------------------------------------


def synthetic_group(batch: int, gridsize: int, n: int, seed: int = 1) -> dict:
    """Diffraction amplitudes [B, C, N, N] and patch offsets [B, C, 2] (pixels, centred per group)."""
    g = torch.Generator().manual_seed(seed)
    c = gridsize * gridsize
    offsets = torch.zeros(batch, c, 2)
    if c > 1:
        square = torch.tensor([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]])
        offsets = square + torch.randn(batch, c, 2, generator=g)
        offsets = offsets - offsets.mean(dim=1, keepdim=True)
    return {"diffraction": torch.rand(batch, c, n, n, generator=g) * 2, "offsets": offsets}


def _disk_probe(n: int) -> np.ndarray:
    from ptycho_torch.physics.forward import probe_disk_mask

    return (probe_disk_mask(n) * 3).numpy().astype(np.complex64)


def _autocast(precision: str):
    if precision == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def split_contender(entry: str) -> tuple[str, int | None]:
    """``NAME`` -> (NAME, None: the project's default estimate); ``NAME+estK`` -> (NAME, K).  Bad K raises ValueError."""
    name, plus, estimate = entry.partition("+est")
    if not plus:
        return name, None
    if not estimate.isdigit():
        raise ValueError(f"{entry!r}: expected NAME+estK with K a whole number")
    return name, int(estimate)


def project_step(kind: str, gridsize: int, width: int, n: int, group: dict, precision: str,
                 architecture: str) -> Callable[[], None]:
    """One training step or one inference forward of this project's shipped module."""
    from ptycho_torch.model.module import PtychoPINNModule

    torch.manual_seed(0)
    name, estimate_iters = split_contender(architecture)
    model = {"N": n, "gridsize": gridsize, "n_filters_scale": width, "architecture": name}
    if estimate_iters is not None:
        model["estimate_iters"] = estimate_iters
    module = PtychoPINNModule(model, _disk_probe(n), mean_total_intensity=float((n / 2) ** 2), nphotons=1e9)
    if kind == "infer":
        module.eval()

        def forward():
            with torch.inference_mode(), _autocast(precision):
                module.predict_patches(group["diffraction"], group["offsets"])

        return forward
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(precision):
            loss = module.compute_loss(group)
        loss.backward()
        opt.step()

    return step


def upstream_step(up: SimpleNamespace, kind: str, gridsize: int, width: int, n: int, group: dict) -> Callable[[], None]:
    """One training step or one inference forward of upstream's ``PtychoPINN_Lightning``, fp32."""
    cfg, helper = up.config, up.helper
    c = gridsize * gridsize
    data = cfg.DataConfig(N=n, C=c, grid_size=(gridsize, gridsize))
    model = cfg.ModelConfig(n_filters_scale=width, C_model=c, C_forward=c, object_big=gridsize > 1)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # its decoder prints one line per block
        module = up.model.PtychoPINN_Lightning(model, data, cfg.TrainingConfig(), cfg.InferenceConfig())
    # The batch its data loader yields: (tensordict, probe [B, C, P, N, N], scale [B, 1, 1, 1]).
    images = group["diffraction"]
    b = images.shape[0]
    probe, _ = helper.normalize_probe(_disk_probe(n).copy())  # its loader normalises the probe
    probe = torch.from_numpy(probe)[None, None, None].expand(b, c, 1, n, n).clone()
    rms = helper.get_rms_scaling_factor(images, data).expand(b, 1, 1, 1).clone()
    fields = {"images": images, "coords_relative": group["offsets"][:, :, None, :].contiguous(),
              "rms_scaling_constant": rms, "physics_scaling_constant": helper.get_physics_scaling_factor(images, data).expand(b, 1, 1, 1).clone(),
              "experiment_id": torch.zeros(b, dtype=torch.int32)}
    batch = (fields, probe, rms)
    if kind == "infer":
        module.eval()

        def forward():
            with torch.inference_mode():
                module.forward_predict(images, fields["coords_relative"], probe, rms)

        return forward
    optimizers = module.configure_optimizers()
    opt = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers

    def step():  # its training_step, less the Trainer's logging
        loss = module.compute_loss(batch)
        (loss / module.accum_steps).backward()
        opt.step()
        opt.zero_grad()

    return step


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    kind: str  # "train" or "infer"
    gridsize: int
    batch: int
    steps: dict = field(default_factory=dict)  # contender -> callable
    counts: dict = field(default_factory=dict)  # contender -> steps per timing
    samples: dict = field(default_factory=dict)  # contender -> list of rates
    errors: dict = field(default_factory=dict)  # contender -> message

    @property
    def items(self) -> int:  # what one step processes: groups (train) or patterns (infer)
        return self.batch if self.kind == "train" else self.batch * self.gridsize ** 2

    @property
    def unit(self) -> str:
        return "groups/s" if self.kind == "train" else "patterns/s"

    @property
    def label(self) -> str:
        name = "training" if self.kind == "train" else "inference forward"
        return f"{name}, gs{self.gridsize}, batch {self.batch} ({self.unit})"


def _error(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def contender_names(architectures: list[str], with_upstream: bool) -> list[str]:
    """Fixed order: upstream, then per architecture fp32 and bf16."""
    names = [UPSTREAM] if with_upstream else []
    return names + [f"{a}/{p}" for a in architectures for p in ("fp32", "bf16")]


def _timed(row: Row, who: str) -> None:
    fn = row.steps.get(who)
    if fn is None or who in row.errors:
        return
    try:
        start = time.perf_counter()
        for _ in range(row.counts[who]):
            fn()
        row.samples.setdefault(who, []).append(row.items * row.counts[who] / (time.perf_counter() - start))
    except Exception as exc:  # a contender that fails (e.g. a bf16 crash) is recorded; the run goes on
        row.errors[who] = _error(exc)


def build_rows(args, up: SimpleNamespace | None) -> list[Row]:
    rows = [Row("train", gs, args.train_batch) for gs in args.gridsizes]
    rows += [Row("infer", gs, b) for gs in args.gridsizes for b in args.infer_batches]
    for row in rows:
        group = synthetic_group(row.batch, row.gridsize, args.n)
        for who in contender_names(args.architectures, up is not None):
            try:
                if who == UPSTREAM:
                    fn = upstream_step(up, row.kind, row.gridsize, args.width, args.n, group)
                else:
                    arch, precision = who.split("/")
                    fn = project_step(row.kind, row.gridsize, args.width, args.n, group, precision, arch)
                took = 0.0
                for _ in range(args.warmup):
                    start = time.perf_counter()
                    fn()
                    took = time.perf_counter() - start
                row.steps[who] = fn
                row.counts[who] = args.steps or max(1, round(args.seconds / took) if took > 0 else 1)
            except Exception as exc:
                row.errors[who] = _error(exc)
    return rows


def measure(rows: list[Row], args) -> None:
    for rnd in range(args.repeats):
        for row in rows:
            present = [who for who in row.steps if who not in row.errors]
            k = rnd % len(present) if present else 0
            for who in present[k:] + present[:k]:
                _timed(row, who)
        print(f"round {rnd + 1}/{args.repeats} done")
        sys.stdout.flush()


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarise(row: Row, architectures: list[str]) -> dict:
    """Per contender median and samples (or its error); ratios per architecture."""
    out = {"kind": row.kind, "gridsize": row.gridsize, "batch": row.batch, "unit": row.unit, "label": row.label,
           "contenders": {}, "ratios": {}}
    for who in row.steps.keys() | row.errors.keys():
        if who in row.errors:
            out["contenders"][who] = {"error": row.errors[who]}
        elif row.samples.get(who):
            s = row.samples[who]
            out["contenders"][who] = {"median": statistics.median(s), "samples": s, "steps_per_sample": row.counts[who]}
    med = {who: c.get("median") for who, c in out["contenders"].items()}
    for arch in architectures:
        out["ratios"][arch] = {"fp32_over_upstream": _ratio(med.get(f"{arch}/fp32"), med.get(UPSTREAM)),
                               "bf16_over_fp32": _ratio(med.get(f"{arch}/bf16"), med.get(f"{arch}/fp32"))}
    return out


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "-"
    return "FAILED" if "error" in entry else f"{entry['median']:.1f}"


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def print_table(rows: list[dict], architectures: list[str]) -> None:
    head = f"{'':46s} {'upstream':>9s}"
    for arch in architectures:
        head += f" | {arch + ' fp32':>12s} {'ratio':>6s} {arch + ' bf16':>12s} {'bf16/fp32':>9s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["contenders"]
        line = f"{r['label']:46s} {_cell(c.get(UPSTREAM)):>9s}"
        for arch in architectures:
            q = r["ratios"][arch]
            line += (f" | {_cell(c.get(arch + '/fp32')):>12s} {_x(q['fp32_over_upstream']):>6s}"
                     f" {_cell(c.get(arch + '/bf16')):>12s} {_x(q['bf16_over_fp32']):>9s}")
        print(line)
        for who, entry in sorted(c.items()):
            if "error" in entry:
                print(f"    {who} failed: {entry['error']}")


def profile_project_gs2(args, architecture: str, top: int = 15) -> list[dict]:
    """Top operators (self CPU time) of the project's gridsize-2 fp32 training step."""
    from torch.profiler import ProfilerActivity, profile

    step = project_step("train", 2, args.width, args.n, synthetic_group(args.train_batch, 2, args.n), "fp32", architecture)
    for _ in range(max(args.warmup, 1)):
        step()
    steps = args.steps or 5
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    table = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1000 / steps,
              "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in events[:top]]
    print(f"\nproject ({architecture}) gs2 training step (batch {args.train_batch}, fp32), "
          f"top {top} operators by self CPU time, {sum(e.self_cpu_time_total for e in events) / 1000 / steps:.1f} ms/step in all:")
    for t in table:
        print(f"  {t['self_ms_per_step']:8.2f} ms/step {100 * t['share']:5.1f}%  x{t['calls_per_step']:<5.0f} {t['op']}")
    return table


# --- command line ---------------------------------------------------------------------------


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", help=f"upstream PtychoPINN checkout (the directory holding {PACKAGE}/); else ${ENV_VAR}")
    parser.add_argument("--gridsizes", type=int, nargs="+", default=[1, 2], help="gridsizes (1 and/or 2)")
    parser.add_argument("--train-batch", type=int, default=16, help="groups per training batch")
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[16, 64], help="groups per inference batch")
    parser.add_argument("--width", type=int, default=2, help="n_filters_scale, the same for both")
    parser.add_argument("--architectures", nargs="+", default=["resunet", "cnn", "cnn+est0"],
                        help="the project's generators to measure: NAME (its defaults) or NAME+estK "
                             "(model.estimate_iters K; +est0: the network alone, as upstream)")
    parser.add_argument("--seconds", type=float, default=1.0, help="about this long per contender per round")
    parser.add_argument("--steps", type=int, default=0, help="exactly this many steps per timing instead (0: use --seconds)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (>= 1)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians over them)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--profile", action="store_true", help="also profile the project's gs2 training step")
    parser.add_argument("--smoke", action="store_true", help="tiny run: batch 2, width 1, 1 step, 1 round, 1 warm-up step")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    counts = [args.train_batch, *args.infer_batches, args.width, args.repeats, args.threads, args.warmup]
    if min(counts) < 1 or args.steps < 0 or not args.seconds > 0:
        parser.error("--train-batch, --infer-batches, --width, --repeats, --threads and --warmup must be >= 1; "
                     "--steps >= 0; --seconds > 0")
    from ptycho_torch.model.registry import ARCHITECTURES

    def known(entry: str) -> bool:
        try:
            return split_contender(entry)[0] in ARCHITECTURES
        except ValueError:
            return False

    unknown = sorted(a for a in args.architectures if not known(a))
    if unknown:
        parser.error(f"--architectures: expected NAME or NAME+estK with NAME from {list(ARCHITECTURES)}, "
                     f"found {unknown}")
    if not set(args.gridsizes) <= {1, 2}:
        parser.error(f"--gridsizes: expected 1 and/or 2, found {args.gridsizes}; hint: the synthetic groups have at most 4 patches")
    args.n = 64  # upstream's encoder supports N = 64, 128, 256 only
    if args.smoke:
        args.train_batch, args.infer_batches, args.width = 2, [2], 1
        args.steps, args.warmup, args.repeats = 1, 1, 1
    return args


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    from ptycho_torch.atomic import write_json_atomic
    from ptycho_torch.model.module import PtychoPINNModule  # noqa: F401  (imported before upstream's is)

    root, source = locate_upstream(args.upstream)
    up = None
    if root is not None:
        try:
            up = import_upstream(root)
        except UpstreamUnusable as exc:
            print(f"bench/upstream_compare.py: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"upstream: {up.root} ({source}), model file {up.model.__file__}")
    else:
        print(f"upstream: not found (no --upstream, no ${ENV_VAR}, no installed ptychopinn); measuring this project only")
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows = build_rows(args, up)
    measure(rows, args)
    load_after = os.getloadavg()[0]
    table = [summarise(r, args.architectures) for r in rows]
    print_table(table, args.architectures)
    result = {
        "bench": "upstream_compare", "smoke": args.smoke, "torch": torch.__version__, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "N": args.n, "n_filters_scale": args.width,
        "architectures": args.architectures, "seconds": args.seconds, "steps": args.steps, "warmup": args.warmup,
        "repeats": args.repeats,
        "upstream": {"found": up is not None, "path": str(up.root) if up else None, "source": source or None,
                     "model_file": up.model.__file__ if up else None},
        "loadavg_1min": {"before": load_before, "after": load_after}, "rows": table,
    }
    if args.profile:
        result["profile_project_gs2_train"] = {a: profile_project_gs2(args, a) for a in args.architectures}
    result["wall_s"] = time.perf_counter() - start
    print(f"1-min load average before/after: {load_before:.2f} / {load_after:.2f} ({args.threads} threads used here)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""Cost of the overlap constraint (gridsize 2, N = 64): banded shifts against dense shift matrices.

    python bench/overlap.py                       # B = 16 and 64, 7 repeats, CPU
    python bench/overlap.py --batches 16 --repeats 3 --out /tmp/overlap.json
    python bench/overlap.py --smoke               # tiny, seconds (CI)

Both variants run in this one process, interleaved repeat by repeat, on the same inputs:

* ``dense``: :func:`dense_constraint`, the constraint as computed before: all ``C*C``
  pairs moved by dense ``[N, N]`` shift matrices (``W_y @ P @ W_x^T``);
* ``banded``: :func:`~ptycho_torch.physics.overlap.overlap_constraint` as it is now
  (own terms unshifted, neighbours by whole-pixel gather plus the few fractional taps).

Measured per batch size B (groups of 4 patches; offsets of a jittered raster, about
+-4 px around the group centre, so every neighbour move is sub-pixel):

* ``constraint_fwd_ms`` / ``constraint_fwd_bwd_ms``: the constraint alone (forward; forward
  plus backward into the patches, offsets without gradient as in training);
* ``step_ms``: one full gs2 training step of :class:`PtychoPINNModule` (n_filters_scale 2,
  Adam: zero_grad, loss, backward, step), with each variant patched in;
* ``step_no_constraint_ms``: the same step with ``object_big`` off (no constraint), so
  ``constraint_share = (step_ms - step_no_constraint_ms) / step_ms`` is the constraint's
  share of a step, measured end to end.

Medians over ``--repeats`` (after one warm-up); ratios are dense / banded.  Prints a table
and writes JSON (``bench/results/overlap.json`` by default; atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "overlap.json"
N = 64
GRIDSIZE = 2


def dense_constraint(patches: torch.Tensor, offsets_xy: torch.Tensor) -> torch.Tensor:
    """The constraint as it was computed before the banded shifts (the ``dense`` variant).

    Same formula as :func:`~ptycho_torch.physics.overlap.overlap_constraint`: all ``C*C``
    pairs, own terms included, each moved by dense ``[N, N]`` shift matrices.
    """
    from ptycho_torch.physics.overlap import COUNT_EPS, SUBPIXEL_KERNEL, _moved_masks, relative_shifts
    from ptycho_torch.physics.shifts import translate_dense

    b, c, n, _ = patches.shape
    shifts = relative_shifts(offsets_xy.to(patches.real.dtype)).reshape(b, c * c, 2)
    weights = _moved_masks(shifts, n).view(b, c, c, n, n)
    sources = patches[:, None].expand(b, c, c, n, n).reshape(b, c * c, n, n)
    moved = translate_dense(sources, shifts, SUBPIXEL_KERNEL).view(b, c, c, n, n)
    return (weights * moved).sum(dim=2) / (weights.sum(dim=2) + COUNT_EPS)


@contextlib.contextmanager
def _variant(name: str):
    """Make the forward model use the ``dense`` or the ``banded`` (current) constraint in the block."""
    from ptycho_torch.physics import forward, overlap

    saved = forward.overlap_constraint
    forward.overlap_constraint = {"dense": dense_constraint, "banded": overlap.overlap_constraint}[name]
    try:
        yield
    finally:
        forward.overlap_constraint = saved


def _inputs(b: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    patches = torch.complex(torch.randn(b, 4, n, n, generator=g), torch.randn(b, 4, n, n, generator=g))
    grid = torch.tensor([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]]) * (n / 64)
    offsets = grid + torch.randn(b, 4, 2, generator=g)
    return patches, offsets - offsets.mean(dim=1, keepdim=True)


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _module(n: int, object_big: bool, width: int):
    from ptycho_torch.model.module import PtychoPINNModule
    from ptycho_torch.physics.forward import probe_disk_mask

    torch.manual_seed(0)
    probe = (probe_disk_mask(n) * 3).numpy().astype(np.complex64)
    return PtychoPINNModule({"N": n, "gridsize": GRIDSIZE, "n_filters_scale": width, "object_big": object_big},
                            probe, mean_total_intensity=float((n / 2) ** 2), nphotons=1e9)


def _step_fn(module, batch):
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        module.compute_loss(batch).backward()
        opt.step()

    return step


def measure(b: int, n: int, repeats: int, width: int) -> dict:
    """All timings (ms lists) for one batch size, variants interleaved per repeat."""
    from ptycho_torch.physics import forward

    patches, offsets = _inputs(b, n)
    leaf = patches.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            forward.overlap_constraint(patches, offsets)

    def fwd_bwd():
        forward.overlap_constraint(leaf, offsets).abs().sum().backward()
        leaf.grad = None

    g = torch.Generator().manual_seed(1)
    batch = {"diffraction": torch.rand(b, 4, n, n, generator=g) * 2, "offsets": offsets}
    with_c, without_c = _module(n, True, width), _module(n, False, width)
    steps = {"with": _step_fn(with_c, batch), "without": _step_fn(without_c, batch)}
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name in ("dense", "banded"):
            with _variant(name):
                times.setdefault(f"{name}_constraint_fwd_ms", []).extend(_time(fwd, 1))
                times.setdefault(f"{name}_constraint_fwd_bwd_ms", []).extend(_time(fwd_bwd, 1))
                times.setdefault(f"{name}_step_ms", []).extend(_time(steps["with"], 1))
        times.setdefault("step_no_constraint_ms", []).extend(_time(steps["without"], 1))
    return times


def summarise(times: dict[str, list[float]]) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict = {"medians_ms": med, "samples_ms": times}
    for key in ("constraint_fwd_ms", "constraint_fwd_bwd_ms", "step_ms"):
        out[f"ratio_{key}"] = med[f"dense_{key}"] / med[f"banded_{key}"]
    for name in ("dense", "banded"):
        step = med[f"{name}_step_ms"]
        out[f"{name}_constraint_share"] = max(0.0, step - med["step_no_constraint_ms"]) / step
        out[f"{name}_constraint_fwd_bwd_share"] = med[f"{name}_constraint_fwd_bwd_ms"] / step
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64], help="groups per batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per variant (median)")
    parser.add_argument("--width", type=int, default=2, help="n_filters_scale of the training-step model")
    parser.add_argument("--smoke", action="store_true", help="tiny: N=32, B=2, 2 repeats, width 1")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    n, batches, repeats, width = (32, [2], 2, 1) if args.smoke else (N, args.batches, args.repeats, args.width)
    if repeats < 1 or any(b < 1 for b in batches):
        parser.error("--repeats and --batches must be >= 1")
    result = {
        "bench": "overlap", "N": n, "gridsize": GRIDSIZE, "n_filters_scale": width, "repeats": repeats,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "batches": {},
    }
    for b in batches:
        s = summarise(measure(b, n, repeats, width))
        result["batches"][str(b)] = s
        m = s["medians_ms"]
        print(f"B={b:4d}  constraint fwd   dense {m['dense_constraint_fwd_ms']:8.2f} ms  banded {m['banded_constraint_fwd_ms']:8.2f} ms  x{s['ratio_constraint_fwd_ms']:.2f}")
        print(f"        constraint f+b   dense {m['dense_constraint_fwd_bwd_ms']:8.2f} ms  banded {m['banded_constraint_fwd_bwd_ms']:8.2f} ms  x{s['ratio_constraint_fwd_bwd_ms']:.2f}")
        print(f"        training step    dense {m['dense_step_ms']:8.2f} ms  banded {m['banded_step_ms']:8.2f} ms  x{s['ratio_step_ms']:.2f}"
              f"  (no constraint {m['step_no_constraint_ms']:.2f} ms)")
        print(f"        constraint share of a step: dense {s['dense_constraint_share']:.1%}  banded {s['banded_constraint_share']:.1%}"
              f"  (alone f+b / step: {s['dense_constraint_fwd_bwd_share']:.1%} / {s['banded_constraint_fwd_bwd_share']:.1%})")
        sys.stdout.flush()
    from ptycho_torch.atomic import write_json_atomic

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

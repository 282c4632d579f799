"""Peak memory and wall time of simulate -> train one epoch -> reconstruct, by scan size.

    python bench/memory.py                         # 5k, 20k and 100k patterns (45+ min on 2 shared cores)
    python bench/memory.py --sizes 5000 20000      # a subset
    python bench/memory.py --smoke                 # tiny sizes, seconds (the CI test runs this)

Each stage runs as its own process through the public command (``ptycho-simulate``,
``ptycho-train``, ``ptycho-infer``, started as ``python -m ptycho_torch.cli.X``), and its
peak resident set size is read from that process's own resource usage (``os.wait4``:
``ru_maxrss``, the high-water mark of resident memory, file-backed pages included), taken
by a small waiter process so that the benchmark's own size does not leak into it.  Wall
time is the process's, start-up included (about 3-5 s of imports).

The scans: the ``lines`` object at a fixed size (``--object-size``, 512 px), N = 64, a
``random`` scan of n positions, 1e9 photons.  A fixed object keeps everything that should
not depend on n (object, stitching canvas) the same, so any growth with n is memory kept per
pattern.  Training: one epoch of the ``cnn`` generator at gridsize 2, batch 64, n/4 groups
(so an epoch touches about every pattern once), fp32 on the CPU.  Inference: the same n/4
groups, batch 64, probe-weighted stitching, no refinement.

Sizes can be measured in separate runs into one table (``--append`` with the same ``--out``
and ``--workdir``).  Then, by default (``--infer-first``), a size is reconstructed with the
bundle trained at the next smaller size before its own training epoch runs, so the largest
scan's reconstruction does not wait behind its long epoch (the row names the bundle used);
every finished stage is written to the JSON at once.

The summary divides each stage's peak by its peak at the smallest size (``flatness``: 1.00
is perfectly flat; the target for simulation and inference is within 1.10 from 5k to 100k).
Results go to stdout and JSON (``bench/results/memory.json`` by default; git-ignored).

Measured on the 2-core CPU machine (alone), 5k / 20k / 100k patterns: simulate 167 / 167 / 167
MiB in 9 / 30 / 161 s; one training epoch 1183 / 1179 / 1218 MiB in 38 / 114 / 631 s;
reconstruct 535 / 553 / 575 MiB in 26 / 89 / 425 s (flatness 1.00 / 1.03 / 1.08).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "memory.json"
DEFAULT_SIZES = (5_000, 20_000, 100_000)
SMOKE_SIZES = (256, 1_024)
STAGES = ("simulate", "train", "infer")
FLAT_TARGET = 1.10
"""Peak at the largest size over peak at the smallest, for simulation and inference."""


# A child's ru_maxrss starts from its parent's resident size at fork (Linux keeps the
# high-water mark across exec), so a large parent (a test runner with torch loaded) would
# hide the child's own peak.  The stage is therefore started from this small, fresh Python
# process, which waits for it and reports its ru_maxrss (KiB on Linux) and wall time.
_WAITER = """
import json, os, subprocess, sys, time
argv, log_path = json.loads(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
with open(log_path, "wb") as log:
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - started,
                  "maxrss_kib": usage.ru_maxrss}))
"""


def run_measured(argv: Sequence[str], log_path: Path) -> dict[str, Any]:
    """Run ``argv`` as a child process; its wall seconds and peak RSS (MiB).  A failure raises."""
    waiter = subprocess.run([sys.executable, "-c", _WAITER, json.dumps(list(argv)), str(log_path)],
                            capture_output=True, text=True, env=_child_env(), check=False)
    if waiter.returncode != 0:
        raise RuntimeError(f"could not run {argv[0]}: {waiter.stderr.strip().splitlines()[-1:]}")
    measured = json.loads(waiter.stdout)
    if measured["code"] != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {measured['code']}: " + " | ".join(tail))
    return {"wall_s": round(measured["wall_s"], 2), "peak_rss_mib": round(measured["maxrss_kib"] / 1024.0, 1)}


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def stage_commands(stage: str, n: int, work: Path, object_size: int, batch: int,
                   bundle: Path | None = None) -> list[str]:
    """The command line of one stage for a scan of ``n`` patterns in ``work`` (``bundle``: the one to infer with)."""
    python = [sys.executable, "-m"]
    groups = str(max(1, n // 4))
    scan, run, recon = work / "scan.npz", work / "run", work / "recon"
    if stage == "simulate":
        return python + ["ptycho_torch.cli.simulate", "--out", str(scan), "--scan", "random", "--n-images", str(n),
                         "--object-size", str(object_size), "--quiet"]
    if stage == "train":
        return python + ["ptycho_torch.cli.train", "--train-data-file", str(scan), "--output-dir", str(run),
                         "--gridsize", "2", "--architecture", "cnn", "--n-filters-scale", "1", "--batch-size",
                         str(batch), "--n-groups", groups, "--nepochs", "1", "--accelerator", "cpu",
                         "--logger-backend", "none", "--no-enable-progress-bar"]
    if stage == "infer":
        return python + ["ptycho_torch.cli.infer", "--model", str(bundle or run / "model.ptpinn"), "--data", str(scan),
                         "--out", str(recon), "--n-groups", groups, "--accelerator", "cpu",
                         "--inference-batch-size", str(batch)]
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


def earlier_bundle(root: Path, n: int) -> Path | None:
    """A bundle trained by this benchmark at a smaller size under ``root`` (the largest such), or None."""
    found = []
    for bundle in root.glob("n*/run/model.ptpinn"):
        size = bundle.parent.parent.name[1:]
        if size.isdigit() and int(size) < n:
            found.append((int(size), bundle))
    return max(found)[1] if found else None


def measure_size(n: int, work: Path, object_size: int, batch: int, *, bundle: Path | None = None,
                 on_stage: Any = None) -> dict[str, Any]:
    """All stages for one scan size; ``on_stage(row)`` after each.

    In order simulate, train, infer (inference uses the bundle just trained), or, with
    ``bundle`` (trained earlier with the same settings), simulate, infer with it, then train:
    the largest scan's reconstruction is then measured without waiting for its long epoch.
    """
    work.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"patterns": n}
    order = ("simulate", "infer", "train") if bundle is not None else STAGES
    if bundle is not None:
        row["infer_bundle"] = str(bundle)
    for stage in order:
        result = run_measured(stage_commands(stage, n, work, object_size, batch, bundle), work / f"{stage}.log")
        result["patterns_per_s"] = round(n / result["wall_s"], 1)
        row[stage] = result
        if stage == "simulate":
            row["scan_file_mib"] = round((work / "scan.npz").stat().st_size / 2**20, 1)
        print(f"  {n:>7} {stage:<8} peak {result['peak_rss_mib']:>8.1f} MiB  wall {result['wall_s']:>7.1f} s",
              flush=True)
        if on_stage is not None:
            on_stage(row)
    return row


def flatness(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each stage's peak at the largest size over its peak at the smallest (stages measured at both)."""
    ordered = sorted(rows, key=lambda r: r["patterns"])
    base, last = ordered[0], ordered[-1]
    return {stage: round(last[stage]["peak_rss_mib"] / base[stage]["peak_rss_mib"], 3)
            for stage in STAGES if stage in base and stage in last}


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a fixed-width text table ("-": not measured)."""
    lines = [f"{'patterns':>9} | " + " | ".join(f"{s + ' MiB':>13} {s + ' s':>11}" for s in STAGES)]
    for row in sorted(rows, key=lambda r: r["patterns"]):
        cells = [f"{row[s]['peak_rss_mib']:>13.1f} {row[s]['wall_s']:>11.1f}" if s in row else f"{'-':>13} {'-':>11}"
                 for s in STAGES]
        lines.append(f"{row['patterns']:>9} | " + " | ".join(cells))
    return "\n".join(lines)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="Scan sizes (patterns).")
    parser.add_argument("--smoke", action="store_true", help=f"Tiny sizes {SMOKE_SIZES} and a 128 px object.")
    parser.add_argument("--object-size", type=int, default=None, help="Object side, px (default 512; smoke 128).")
    parser.add_argument("--batch-size", type=int, default=64, help="Training and inference batch (groups).")
    parser.add_argument("--workdir", default=None, help="Where the scans and runs go (default: a temp dir, removed).")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output path.")
    parser.add_argument("--append", action="store_true",
                        help="Merge with the rows already in --out (same settings), so sizes can be run separately.")
    parser.add_argument("--infer-first", action=argparse.BooleanOptionalAction, default=None,
                        help="Reconstruct each size with the bundle trained at the next smaller size in --workdir "
                             "before training on it (default: on with --append and --workdir).")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes or (SMOKE_SIZES if args.smoke else DEFAULT_SIZES))
    if args.infer_first is None:
        args.infer_first = bool(args.append and args.workdir)
    object_size = args.object_size or (128 if args.smoke else 512)

    started = time.perf_counter()
    load_before = _loadavg()
    out = Path(args.out)
    earlier_rows: list[dict[str, Any]] = []
    if args.append and out.is_file():
        earlier = json.loads(out.read_text())
        if (earlier["object_size"], earlier["batch_size"]) != (object_size, args.batch_size):
            raise SystemExit(f"{out} was measured with other settings; drop --append or use another --out")
        earlier_rows = [row for row in earlier["rows"] if row["patterns"] not in sizes]
    sys.path.insert(0, str(REPO))
    from ptycho_torch.atomic import write_json_atomic

    def result_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
        rows = sorted(earlier_rows + rows, key=lambda row: row["patterns"])
        return {
            "sizes": [row["patterns"] for row in rows],
            "smoke": bool(args.smoke),
            "object_size": object_size,
            "N": 64,
            "batch_size": args.batch_size,
            "train_config": "cnn, gridsize 2, n_filters_scale 1, n/4 groups, 1 epoch, precision auto (fp32 on CPU), CPU",
            "rows": rows,
            "flatness": flatness(rows),
            "flat_target": FLAT_TARGET,
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": platform.python_version(), "loadavg_before": load_before,
                        "loadavg_after": _loadavg()},
            "wall_s": round(time.perf_counter() - started, 1),
        }

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ptycho-memory-") as tmp:
        root = Path(args.workdir) if args.workdir else Path(tmp)
        for n in sizes:
            bundle = earlier_bundle(root, n) if args.infer_first else None
            # each finished stage is saved at once, so a run stopped early keeps what it measured
            rows.append(measure_size(n, root / f"n{n}", object_size, args.batch_size, bundle=bundle,
                                     on_stage=lambda row: write_json_atomic(out, result_of([*rows, row]))))
    result = result_of(rows)
    print(table(result["rows"]))
    print("peak at largest / smallest size: " + ", ".join(f"{k} {v:.3f}" for k, v in result["flatness"].items())
          + f" (target <= {FLAT_TARGET} for simulate and infer)")
    write_json_atomic(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

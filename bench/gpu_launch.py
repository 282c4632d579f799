"""The launcher's GPU path on one machine, in one go: DDP throughput through ptycho-launch and a
preemption round trip.  Sits beside ``bench/gpu.py`` (which measures the model alone).

    python bench/gpu_launch.py                 # a machine with >= 1 GPU (2 for the DDP row)
    python bench/gpu_launch.py --smoke         # CPU, 2 gloo ranks, tiny: proves the script runs

What it does (every run is a real ``ptycho-launch --local --devices N`` run, the same job code
as on SLURM):
1. simulates a scan (``ptycho-simulate``) into a scratch folder;
2. throughput: for N in ``--devices`` (default 1 and 2, those above the visible GPU count are
   skipped and recorded as such) trains ``--steps`` steps at ``--precision`` (bf16-mixed) and
   reports optimiser steps/s and groups/s from the run record (first step to the end, so
   start-up is excluded), the median of ``--repeats`` runs, and the 2-vs-1 scaling;
3. preemption round trip on the largest N: USR2 to rank 1 once rank 0 has passed step
   ``--preempt-at``; the ranks agree, save ``preempt-step=S.ckpt`` and stop (exit 1: not under
   SLURM, nothing requeues); ``ptycho-launch resume RUN`` continues from that checkpoint to the
   end.  Reports the step it stopped at, the checkpoint, the seconds from the signal to the
   exit and from the resume to its end, and whether the final step count is right.
Results: stdout and JSON (``bench/results/gpu_launch.json``, written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "gpu_launch.json"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _launch(work: Path, *args: str, wait: bool = True, timeout: float = 1800) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "launcher.cli", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if wait:
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def write_run_file(work: Path, scan: Path, args: argparse.Namespace, accelerator: str) -> Path:
    config = {
        "train_data_file": str(scan), "nepochs": 1, "batch_size": args.batch, "n_groups": args.groups, "seed": 1,
        "model": {"N": args.N, "gridsize": 1, "n_filters_scale": args.width},
        "execution": {"accelerator": accelerator, "precision": args.precision, "logger_backend": "none",
                      "enable_progress_bar": False, "checkpoint_every_n_steps": 1000000},
        "cluster": {"preempt_check_every_n_steps": 1, "progress_interval_s": 0, "code_snapshot": "off"},
    }
    path = work / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def throughput(work: Path, devices: int, repeat: int, args: argparse.Namespace) -> dict:
    run_id = f"tp-{devices}-{repeat}"
    out = _launch(work, "--config", "run.yaml", "--runs-dir", "runs", "--run-id", run_id, "--local", "--devices", str(devices))
    state = _read(work / "runs" / run_id / "state.json")
    if out.returncode != 0 or state.get("status") != "COMPLETED":
        return {"devices": devices, "error": (out.stderr or "")[-800:], "status": state.get("status")}
    seconds = float(state["finished_at"]) - float(state["first_step_at"])
    steps = int(state["global_step"]) - 1  # first_step_at is stamped after step 1
    return {"devices": devices, "steps": steps, "seconds": seconds, "steps_per_s": steps / seconds,
            "groups_per_s": steps * args.batch * devices / seconds}


def preemption_round_trip(work: Path, devices: int, args: argparse.Namespace) -> dict:
    run_id = f"preempt-{devices}"
    rd = work / "runs" / run_id
    proc = _launch(work, "--config", "run.yaml", "--runs-dir", "runs", "--run-id", run_id, "--local", "--devices", str(devices),
                   wait=False)
    deadline = time.monotonic() + 900
    while _read(rd / "progress.json").get("global_step", 0) < args.preempt_at:
        if proc.poll() is not None or time.monotonic() > deadline:
            return {"error": f"run ended or stalled before step {args.preempt_at}: {(proc.stderr.read() if proc.stderr else '')[-800:]}"}
        time.sleep(0.05)
    target = devices - 1  # the last rank only: the ranks must agree among themselves
    os.kill(int(_read(rd / "ranks" / f"rank-{target}.json")["pid"]), signal.SIGUSR2)
    signalled = time.monotonic()
    proc.wait(timeout=600)
    stopped_s = time.monotonic() - signalled
    state = _read(rd / "state.json")
    step = state.get("preempted_at_step")
    checkpoint = state.get("preempt_checkpoint")
    start = time.monotonic()
    resumed = _launch(work, "--runs-dir", "runs", "resume", run_id)
    resume_s = time.monotonic() - start
    final = _read(rd / "state.json")
    rank0 = _read(rd / "ranks" / "rank-0.json")
    expected = -(-args.groups // (args.batch * devices))
    return {"devices": devices, "signal_to_rank": target, "preempted_at_step": step, "checkpoint": Path(checkpoint).name if checkpoint else None,
            "signal_to_exit_s": stopped_s, "first_exit_code": proc.returncode, "resume_exit_code": resumed.returncode,
            "resume_s": resume_s, "final_status": final.get("status"), "final_step": final.get("global_step"),
            "expected_final_step": expected, "resumed_from": Path(rank0.get("resumed_from") or "").name or None,
            "ok": bool(step) and final.get("status") == "COMPLETED" and final.get("global_step") == expected
            and (rank0.get("resumed_from") or "").endswith(f"preempt-step={step}.ckpt")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, 2 gloo ranks, tiny model, 1 repeat (CI)")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", default="bf16-mixed", choices=["32-true", "16-mixed", "bf16-mixed"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="groups per rank per step")
    parser.add_argument("--groups", type=int, default=32768, help="groups in the scan (steps = groups / (batch x ranks))")
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--width", type=int, default=2, help="n_filters_scale")
    parser.add_argument("--preempt-at", type=int, default=20)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.smoke:
        args.devices, args.repeats, args.batch, args.groups, args.width, args.preempt_at = [2], 1, 4, 96, 1, 2
        args.precision = "32-true"
        accelerator, gpus = "cpu", 0
    else:
        import torch

        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise SystemExit("bench/gpu_launch.py: no CUDA device visible; --smoke runs the CPU version")
        accelerator = "gpu"
    from ptycho_torch import write_json_atomic
    from ptycho_torch.cli.simulate import main as simulate

    result: dict = {"bench": "gpu_launch", "smoke": args.smoke, "accelerator": accelerator, "gpus_visible": gpus,
                    "precision": args.precision, "batch_per_rank": args.batch, "groups": args.groups, "N": args.N,
                    "n_filters_scale": args.width, "load_avg_1min_before": os.getloadavg()[0], "throughput": {}}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-launch-") as tmp:
        work = Path(tmp)
        scan = work / "scan.npz"
        images = args.groups if args.smoke else min(args.groups, 4096)
        assert simulate(["--out", str(scan), "--N", str(args.N), "--n-images", str(images), "--object-size", str(4 * args.N),
                         "--scan", "random", "--seed", "1"]) == 0
        write_run_file(work, scan, args, accelerator)
        for devices in args.devices:
            if accelerator == "gpu" and devices > gpus:
                result["throughput"][str(devices)] = {"skipped": f"{gpus} GPU(s) visible"}
                continue
            runs = [throughput(work, devices, r, args) for r in range(args.repeats)]
            good = [r for r in runs if "steps_per_s" in r]
            row = {"runs": runs}
            if good:
                row.update({"median_steps_per_s": statistics.median(r["steps_per_s"] for r in good),
                            "median_groups_per_s": statistics.median(r["groups_per_s"] for r in good)})
            result["throughput"][str(devices)] = row
            print(f"{devices} rank(s): " + (f"{row['median_steps_per_s']:.2f} steps/s, {row['median_groups_per_s']:.0f} groups/s "
                                            f"(median of {len(good)})" if good else f"failed: {runs[0].get('error', '')[-300:]}"))
        one, two = (result["throughput"].get(k, {}).get("median_groups_per_s") for k in ("1", "2"))
        if one and two:
            result["scaling_2_vs_1"] = two / one
            print(f"2 vs 1 rank groups/s: x{two / one:.2f}")
        usable = [d for d in args.devices if accelerator == "cpu" or d <= gpus]
        if usable and max(usable) > 1:
            result["preemption"] = preemption_round_trip(work, max(usable), args)
            print("preemption round trip: " + json.dumps(result["preemption"]))
    result["load_avg_1min_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Launch latency on the local dev cluster: `ptycho-launch --help`, and submit -> first training step.

    python bench/launch_latency.py [--repeats 3] [--out bench/results/launch_latency.json]

Needs the dev cluster (bash slurm/dev/up.sh; slurm/dev/bin first on PATH for sacct) and
trains the tiny model (N=64, 32 patterns, 1 epoch, 1 task).  Prints medians and writes JSON.
Submit -> first step is measured from the moment `ptycho-launch` is started to the time
rank 0 records its first finished training batch (state.json first_step_at).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{REPO / 'slurm/dev/bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def help_latency(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = _launch(["--help"], REPO)
        times.append(time.perf_counter() - start)
        assert out.returncode == 0, out.stderr
    return times


def submit_to_first_step(repeats: int, work: Path) -> list[float]:
    from ptycho_torch.cli.simulate import main as simulate

    scan = work / "tiny.npz"
    simulate(["--out", str(scan), "--N", "64", "--n-images", "32", "--object-size", "128", "--scan", "random", "--seed", "1"])
    config = {"train_data_file": str(scan), "nepochs": 1, "batch_size": 8, "seed": 1,
              "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
              "execution": {"accelerator": "cpu", "logger_backend": "none", "enable_progress_bar": False},
              "cluster": {"time": "00:10:00", "cpus_per_task": 1, "signal_lead_s": 30, "checkpoint_time_s": 10}}
    (work / "run.yaml").write_text(yaml.safe_dump(config))
    times = []
    for k in range(repeats):
        run_id = f"bench-{k}"
        start = time.time()
        out = _launch(["--config", "run.yaml", "--runs-dir", "runs", "--run-id", run_id, "--wait"], work)
        assert out.returncode == 0, out.stdout + out.stderr
        state = json.loads((work / "runs" / run_id / "state.json").read_text())
        times.append(state["first_step_at"] - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "launch_latency.json")
    args = parser.parse_args()
    helps = help_latency(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        firsts = submit_to_first_step(args.repeats, Path(tmp))
    result = {"help_s": {"median": statistics.median(helps), "samples": helps},
              "submit_to_first_step_s": {"median": statistics.median(firsts), "samples": firsts},
              "repeats": args.repeats, "host": os.uname().nodename, "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ptycho-launch --help           median {result['help_s']['median']:.2f} s  ({args.repeats} runs)")
    print(f"submit -> first training step  median {result['submit_to_first_step_s']['median']:.2f} s  ({args.repeats} runs)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Step-time cost of the launcher's per-step callbacks on 2-rank CPU DDP (gloo, 1 thread per rank).

Modes, measured interleaved (none, old, new, none, old, new, ...) so that a busy machine
hits all of them alike:
- ``none``: no launcher callback (the peer every ratio is taken against);
- ``old``:  the behaviour before issue 10: preemption agreed every step (an all-reduce plus a
  host sync) and progress.json rewritten every step;
- ``new``:  the defaults now: agreement every ``preempt_check_every_n_steps`` (10) steps and
  progress.json at most every ``progress_interval_s`` (10 s).
Both launcher modes also run the heartbeat callbacks, as the job does.  The model is a small
MLP so that the per-step overhead is not hidden by a long step.

Each run is two fresh processes (torchrun-style environment, Lightning DDP, gloo) training
``--steps`` steps; rank 0 reports the median step time after ``--warmup`` steps.  The
script prints, per mode, the median over ``--repeats`` runs, the ratio to ``none`` and the
overhead per step, and writes JSON to ``bench/results/launcher_callbacks.json``.

    python bench/launcher_callbacks.py                   # 5 repeats x 3 modes, 400 steps each
    python bench/launcher_callbacks.py --repeats 1 --steps 40 --warmup 10    # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("none", "old", "new")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_main(args: argparse.Namespace) -> None:
    """One DDP rank: train ``args.steps`` steps of a small MLP with the chosen callbacks."""
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])

    class MLP(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, args.width), torch.nn.ReLU(), torch.nn.Linear(args.width, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class StepClock(Callback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_train_batch_end(self, *a) -> None:
            self.stamps.append(time.perf_counter())

    callbacks: list = []
    if args.mode != "none":
        from launcher.heartbeat import Heartbeat
        from launcher.job import RankInfo, _progress_callback
        from launcher.preempt import PreemptionCallback, PreemptionFlag
        from launcher.rundir import RunDir

        run = RunDir(Path(args.run_dir))
        for sub in (run.ranks_dir, run.checkpoints_dir):
            sub.mkdir(parents=True, exist_ok=True)
        info = RankInfo(rank=rank, local_rank=rank, world_size=2, job_id=None, node="bench")
        every, interval = (1, 0.0) if args.mode == "old" else (10, 10.0)
        heartbeat = Heartbeat(run, rank, 2, None)
        callbacks = [PreemptionCallback(PreemptionFlag(), run.checkpoints_dir, every), heartbeat,
                     _progress_callback(run, info, interval), heartbeat.late()]
    clock = StepClock()
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(args.steps * 2 * args.batch, 64, generator=generator), torch.randn(args.steps * 2 * args.batch, 1, generator=generator))
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=args.steps, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[*callbacks, clock])
    trainer.fit(MLP(), DataLoader(data, batch_size=args.batch))
    if rank == 0:
        steps = [b - a for a, b in zip(clock.stamps[args.warmup:], clock.stamps[args.warmup + 1:])]
        Path(args.out).write_text(json.dumps({"median_step_s": statistics.median(steps), "steps": len(steps)}))


def one_run(mode: str, args: argparse.Namespace, workdir: Path) -> float:
    """Two ranks of one measurement; returns rank 0's median step time (seconds)."""
    out = workdir / f"{mode}-{time.monotonic_ns()}.json"
    run_dir = workdir / f"run-{mode}-{time.monotonic_ns()}"
    port = _free_port()
    cmd = [sys.executable, __file__, "--rank-worker", "--mode", mode, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--width", str(args.width), "--out", str(out), "--run-dir", str(run_dir)]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONWARNINGS": "ignore"}
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=900)[1] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"bench run {mode} failed: {errors[0][-1500:]}{errors[1][-1500:]}")
    return float(json.loads(out.read_text())["median_step_s"])


def machine_load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of none,old,new")
    parser.add_argument("--json", type=Path, default=RESULTS / "launcher_callbacks.json")
    parser.add_argument("--rank-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank_worker:
        rank_main(args)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if args.warmup >= args.steps - 2 or any(m not in MODES for m in modes):
        parser.error("need --warmup < --steps - 2 and modes among none,old,new")
    load_before = machine_load()
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmp:
        for _ in range(args.repeats):
            for mode in modes:
                times[mode].append(one_run(mode, args, Path(tmp)))
    medians = {m: statistics.median(v) for m, v in times.items()}
    peer = medians.get("none")
    result = {"bench": "launcher_callbacks", "ranks": 2, "backend": "gloo", "threads_per_rank": 1, "steps": args.steps,
              "warmup": args.warmup, "batch": args.batch, "width": args.width, "repeats": args.repeats,
              "load_avg_1min_before": load_before, "load_avg_1min_after": machine_load(),
              "median_step_ms": {m: v * 1e3 for m, v in medians.items()},
              "runs_step_ms": {m: [t * 1e3 for t in v] for m, v in times.items()},
              "ratio_to_none": {m: v / peer for m, v in medians.items()} if peer else None,
              "overhead_ms_per_step": {m: (v - peer) * 1e3 for m, v in medians.items()} if peer else None}
    for m in modes:
        extra = f"  x{result['ratio_to_none'][m]:.3f} vs none, {result['overhead_ms_per_step'][m]:+.3f} ms/step" if peer else ""
        print(f"{m:>5}: median step {medians[m] * 1e3:.3f} ms over {args.repeats} runs{extra}")
    if "old" in medians and "new" in medians:
        result["ratio_new_to_old"] = medians["new"] / medians["old"]
        print(f"new/old step time: {result['ratio_new_to_old']:.3f}")
    print(f"load average (1 min) before {load_before:.2f}, after {result['load_avg_1min_after']:.2f}")
    from ptycho_torch import write_json_atomic

    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.json, result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

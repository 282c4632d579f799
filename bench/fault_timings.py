"""Fault -> status timings on the dev cluster: how long until `ptycho-launch status` tells the truth.

    python bench/fault_timings.py [--only reuse,hang,...] [--out bench/results/fault_timings.json]

For each fault: the time from the fault to the right status (``status``/``list`` polled as
a user would, about once a second, or the run record where the job writes it), the later
milestones (requeued, restarted, completed), the final record, and whether a user command
was needed to finish the run.  Faults: ``reuse`` (resume and --run-id reuse of a running
run), ``cancel``, ``timeout`` (1-minute limit, rank 0 stuck), ``hang`` (hang@rank=1,step=4,
hang_timeout_s 15), ``nodefail`` (slurmd of node2 killed; restarted once status says
NODE_FAIL), ``refused`` (USR2 after ``scontrol update Requeue=0``: the requeue is refused),
``preempt2`` (USR2 twice).  The tiny model (N=64, 32 patterns, CPU) trains in every run.

Uses the running dev cluster, or brings it up with slurm/dev/up.sh (root) and down at the
end.  Run it alone (``flock -o /tmp/slurm.lock flock -o /tmp/cpu.lock ...``): the times
include this 2-core machine's load, which is written into the JSON (load averages before
and after).  Times come from ``time.time()`` here and from the records the job writes on
the same host.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "slurm" / "dev"
SLURM_STATE = Path(os.environ.get("SLURM_STATE", "/tmp/ptycho-slurm"))
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
FAULTS = ("reuse", "cancel", "timeout", "hang", "nodefail", "refused", "preempt2")


class Bench:
    """One work folder (run.yaml, runs/) and small helpers to drive ptycho-launch as a user does."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "launcher.cli", "--runs-dir", str(self.work / "runs")]
        if not args or args[0] not in ("status", "logs", "cancel", "list", "resume"):
            cmd += ["--config", str(self.work / "run.yaml")]
        return subprocess.run([*cmd, *args], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300)

    def submit(self, run_id: str, *args: str) -> str:
        out = self.cli("--run-id", run_id, *args)
        if out.returncode != 0:
            raise RuntimeError(f"submit {run_id}: {out.stderr.strip()}")
        return self.launch(run_id)["job_ids"][-1]

    def record(self, run_id: str, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.work / "runs" / run_id / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def launch(self, run_id: str) -> dict[str, Any]:
        return self.record(run_id, "launch.json")

    def state(self, run_id: str) -> dict[str, Any]:
        return self.record(run_id, "state.json")

    def step(self, run_id: str) -> int:
        return int(self.record(run_id, "progress.json").get("global_step", 0))

    def shown(self, run_id: str) -> str:
        """The training status `ptycho-launch status RUN` shows (it reconciles with the scheduler)."""
        match = re.search(r"^training\s+(\S+)", self.cli("status", run_id).stdout, re.M)
        return match.group(1) if match else "?"

    def listed(self, run_id: str) -> list[str]:
        line = next((row for row in self.cli("list").stdout.splitlines() if row.startswith(run_id + " ")), "")
        return line.split()[2:4]


def sched(job: str) -> str | None:
    from launcher.registry import scheduler_state

    return scheduler_state(job)


def wait(pred: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def until_shown(b: Bench, run_id: str, wanted: str, timeout: float) -> float:
    """time.time() when `status` first shows ``wanted``."""
    wait(lambda: b.shown(run_id) == wanted, timeout, f"status {wanted} of {run_id}", poll=0.5)
    return time.time()


def ended(b: Bench, run_id: str, timeout: float = 400) -> dict[str, Any]:
    job = b.launch(run_id)["job_ids"][-1]
    from launcher.registry import TERMINAL_STATES

    wait(lambda: sched(job) in TERMINAL_STATES, timeout, f"{run_id} to end", poll=0.5)
    b.cli("status", run_id)  # reconcile, as a user looking would
    return {"scheduler": sched(job), **{k: b.state(run_id).get(k) for k in
            ("status", "attempts", "requeues", "requeue_reason", "global_step", "error", "finished_at")}}


# ---- the faults ------------------------------------------------------------------------

def fault_reuse_and_cancel(b: Bench) -> dict[str, Any]:
    job = b.submit("busy", "--set", "nepochs=500")
    wait(lambda: b.step("busy") >= 1, 180, "busy to train")
    out: dict[str, Any] = {}
    for name, args in (("resume", ("resume", "busy")), ("run_id_reuse", ("--run-id", "busy", "--set", "nepochs=500"))):
        t0 = time.time()
        res = b.cli(*args)
        out[name] = {"exit_code": res.returncode, "refused_after_s": time.time() - t0, "message": res.stderr.strip()[:300],
                     "jobs_of_run": b.launch("busy")["job_ids"], "user_command_needed": "no (the command itself is refused)"}
    t0 = time.time()
    assert b.cli("cancel", "busy").returncode == 0
    wait(lambda: sched(job) == "CANCELLED", 60, "CANCELLED")
    scheduler_at = time.time()
    shown_at = until_shown(b, "busy", "CANCELLED", 60)
    cancel = {"scheduler_cancelled_after_s": scheduler_at - t0, "status_cancelled_after_s": shown_at - t0,
              "listed": b.listed("busy"), "final": ended(b, "busy"), "user_command_needed": "the cancel itself; resume to continue"}
    return {"reuse": out, "cancel": cancel}


def fault_timeout(b: Bench) -> dict[str, Any]:
    b.submit("tl", "--time", "1", "--signal-lead-s", "30", "--set", "nepochs=50",
             "--env", "PTYCHO_LAUNCH_FAULT=hang@rank=0,step=2", "--hang-timeout-s", "600")
    job = b.launch("tl")["job_ids"][-1]
    wait(lambda: sched(job) == "RUNNING", 120, "tl to run")
    started = _scontrol_time(job, "StartTime")
    wait(lambda: sched(job) == "TIMEOUT", 200, "TIMEOUT", poll=0.5)
    scheduler_at = time.time()
    shown_at = until_shown(b, "tl", "TIMEOUT", 60)
    limit_at = started + 60
    return {"time_limit_to_scheduler_timeout_s": scheduler_at - limit_at, "time_limit_to_status_timeout_s": shown_at - limit_at,
            "scheduler_to_status_s": shown_at - scheduler_at, "listed": b.listed("tl"), "final": ended(b, "tl"),
            "user_command_needed": "resume to continue (a time limit is not retried)"}


def fault_hang(b: Bench) -> dict[str, Any]:
    b.submit("hang", "--devices", "2", "--strategy", "ddp", "--set", "nepochs=10",
             "--env", "PTYCHO_LAUNCH_FAULT=hang@rank=1,step=4", "--hang-timeout-s", "15")
    wait(lambda: b.step("hang") >= 4, 180, "step 4", poll=0.1)
    hung_at = time.time()
    state = wait(lambda: (s := b.state("hang")).get("hung_detected_at") and s, 120, "the watchdog")
    detected = state["hung_detected_at"]
    requeued = wait(lambda: b.state("hang").get("requeued_at"), 120, "the requeue")
    restarted = wait(lambda: (s := b.state("hang")).get("attempts", 0) >= 2 and s.get("started_at"), 180, "restart")
    final = ended(b, "hang")
    return {"hang_timeout_s": 15, "to_hung_recorded_s": detected - hung_at, "to_requeued_s": requeued - hung_at,
            "to_restarted_s": restarted - hung_at, "to_completed_s": (final["finished_at"] or time.time()) - hung_at,
            "hung_rank": state.get("hung_rank"), "final": final, "user_command_needed": "no" if final["status"] == "COMPLETED" else "yes"}


def fault_nodefail(b: Bench) -> dict[str, Any]:
    job = b.submit("nodefail", "--nodes", "2", "--devices", "1", "--strategy", "ddp", "--set", "nepochs=100")
    wait(lambda: b.step("nodefail") >= 6, 180, "step 6", poll=0.1)
    killed_at = time.time()
    os.kill(int((SLURM_STATE / "slurmd-node2.pid").read_text().split()[0]), signal.SIGKILL)
    timeline: list[tuple[float, str | None, str]] = []
    try:
        def seen() -> bool:
            timeline.append((time.time() - killed_at, sched(job), b.shown("nodefail")))
            return timeline[-1][2] == "NODE_FAIL"
        wait(seen, 200, "status NODE_FAIL", poll=0.5)
        shown_at = time.time()
        listed = b.listed("nodefail")
    finally:
        subprocess.run([SLURMD, "-N", "node2"], check=True, timeout=60)
    back_at = time.time()
    restarted = wait(lambda: (s := b.state("nodefail")).get("attempts", 0) >= 2 and s.get("started_at"), 300, "restart")
    final = ended(b, "nodefail")
    last_running = max((t for t, _, shown in timeline if shown == "RUNNING"), default=None)
    return {"slurmd_timeout_s": _slurm_conf("SlurmdTimeout"), "to_status_node_fail_s": shown_at - killed_at,
            "last_status_running_s": last_running, "listed": listed,
            "timeline": [{"t_s": round(t, 1), "scheduler": s, "status": st} for t, s, st in timeline][::3],
            "node_back_to_restarted_s": restarted - back_at, "node_back_to_completed_s": (final["finished_at"] or time.time()) - back_at,
            "to_completed_s": (final["finished_at"] or time.time()) - killed_at, "final": final,
            "user_command_needed": "no" if final["status"] == "COMPLETED" else "yes"}


def fault_refused(b: Bench) -> dict[str, Any]:
    job = b.submit("refused", "--set", "nepochs=500")
    wait(lambda: b.step("refused") >= 2, 180, "step 2")
    subprocess.run(["scontrol", "update", f"JobId={job}", "Requeue=0"], check=True)  # a site that forbids requeue
    t0 = time.time()
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    shown_at = until_shown(b, "refused", "PREEMPTED", 120)
    final = ended(b, "refused")
    return {"usr2_to_status_preempted_s": shown_at - t0, "listed": b.listed("refused"), "final": final,
            "user_command_needed": "resume to continue (the scheduler refused the requeue)"}


def fault_preempt_twice(b: Bench) -> dict[str, Any]:
    job = b.submit("pre2", "--set", "nepochs=7")  # 28 steps on one rank
    rounds = []
    for k, at_step in enumerate((4, 14), start=1):
        wait(lambda: (s := b.state("pre2")).get("status") == "RUNNING" and s.get("attempts") == k and b.step("pre2") >= at_step,
             240, f"attempt {k} at step {at_step}", poll=0.1)
        t0 = time.time()
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
        wait(lambda: b.state("pre2").get("requeues", 0) >= k, 120, f"requeue {k}", poll=0.1)
        requeued = time.time()
        restarted = wait(lambda: (s := b.state("pre2")).get("attempts", 0) >= k + 1 and s.get("started_at"), 240, f"restart {k}", poll=0.2)
        rounds.append({"usr2_to_requeued_s": requeued - t0, "usr2_to_restarted_s": restarted - t0})
    final = ended(b, "pre2")
    return {"rounds": rounds, "final": final, "user_command_needed": "no" if final["status"] == "COMPLETED" else "yes"}


# ---- cluster and main ------------------------------------------------------------------

def _scontrol_time(job: str, field: str) -> float:
    text = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True).stdout
    value = re.search(rf"\b{field}=(\S+)", text).group(1)
    return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))


def _slurm_conf(key: str) -> str | None:
    text = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    match = re.search(rf"^{key}\s*=\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else None


def _cluster_up() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def write_config(work: Path) -> None:
    from ptycho_torch.cli.simulate import main as simulate

    scan = work / "tiny.npz"
    simulate(["--out", str(scan), "--N", "64", "--n-images", "32", "--object-size", "128", "--scan", "random", "--seed", "1"])
    config = {"train_data_file": str(scan), "nepochs": 2, "batch_size": 8, "n_groups": 32, "seed": 7,
              "model": {"N": 64, "gridsize": 1, "n_filters_scale": 1},
              "execution": {"accelerator": "cpu", "logger_backend": "csv", "enable_progress_bar": False,
                            "checkpoint_every_n_steps": 2},
              "cluster": {"time": "00:10:00", "cpus_per_task": 1, "signal_lead_s": 30, "checkpoint_time_s": 10}}
    (work / "run.yaml").write_text(yaml.safe_dump(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAULTS), help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fault_timings.json")
    args = parser.parse_args(argv)
    chosen = [f.strip() for f in args.only.split(",") if f.strip()]
    os.environ["PATH"] = f"{DEV / 'bin'}{os.pathsep}{os.environ['PATH']}"
    started = False
    if not _cluster_up():
        subprocess.run(["bash", str(DEV / "up.sh")], check=True, capture_output=True)
        started = True
    results: dict[str, Any] = {"load_before": os.getloadavg(), "host": os.uname().nodename, "cpus": os.cpu_count(),
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    runners = {"reuse": fault_reuse_and_cancel, "cancel": fault_reuse_and_cancel, "timeout": fault_timeout,
               "hang": fault_hang, "nodefail": fault_nodefail, "refused": fault_refused, "preempt2": fault_preempt_twice}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(Path(tmp))
            write_config(bench.work)
            done: set[Callable] = set()
            for name in chosen:
                runner = runners[name]
                if runner in done:
                    continue
                done.add(runner)
                t0 = time.time()
                try:
                    value = runner(bench)
                except Exception as exc:  # one broken fault must not hide the others' numbers
                    value = {"error": f"{type(exc).__name__}: {exc}"}
                results.update(value if runner is fault_reuse_and_cancel and "error" not in value else {name: value})
                print(f"[{name}] {time.time() - t0:.0f} s: {json.dumps(value, default=str)[:600]}", flush=True)
    finally:
        if started:
            subprocess.run(["bash", str(DEV / "down.sh")], capture_output=True)
    results["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from ptycho_torch import write_json_atomic

    write_json_atomic(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

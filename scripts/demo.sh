#!/usr/bin/env bash
# The main job on the embedded default: set up, simulate a "lines" scan, train it through
# ptycho-launch in local debug mode (the same job code SLURM runs; one GPU if present, else the
# CPU), reconstruct the scan (network, probe-weighted stitching, then physics refinement), and
# write PNGs plus metrics against the simulated ground truth.  Ends with a short summary.
# Outputs go under ${OUT:-demo_outputs}/. A second run resumes the finished run and retrains
# nothing; remove the folder to start again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-demo_outputs}
# local mode runs one rank: give it every core unless the caller chose
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
stage() { date +%s.%N; }
t0=$(stage)
bash scripts/setup.sh
t1=$(stage)
ptycho-simulate --out "$OUT/data/lines.npz" --probe curved
t2=$(stage)
ptycho-launch --config examples/demo.yaml --local --runs-dir "$OUT/runs" --run-id demo \
  --set train_data_file="$OUT/data/lines.npz"
t3=$(stage)
ptycho-infer --model "$OUT/runs/demo/model.ptpinn" --data "$OUT/data/lines.npz" --out "$OUT/recon" \
  --accelerator auto --refine-iters 20 | tee "$OUT/infer.log"
t4=$(stage)
python3 - "$OUT/recon/metrics.json" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
t = [float(v) for v in sys.argv[2:]]
network, refined = metrics["network"], metrics
print("demo summary")
print(f"  network alone:     amplitude SSIM {network['amp_ssim']:.3f}, phase SSIM {network['phase_ssim']:.3f}")
print(f"  with refinement:   amplitude SSIM {refined['amp_ssim']:.3f}, phase SSIM {refined['phase_ssim']:.3f}"
      f" ({metrics['refinement']['iterations']} passes, {metrics['refinement']['seconds']:.1f} s)")
stages = ("set-up", "simulate", "train", "reconstruct + refine")
print("  time per stage:    " + ", ".join(f"{name} {b - a:.0f} s" for name, a, b in zip(stages, t, t[1:])))
PY
echo "demo finished: see $OUT/recon/report.png (truth, reconstruction, error, FRC, loss curve) and $OUT/recon/metrics.json"

#!/usr/bin/env bash
# The main job on the embedded default: set up, simulate a "lines" scan, train it through
# ptycho-launch in local debug mode (the same job code SLURM runs; one GPU if present, else the
# CPU), reconstruct the scan, and write PNGs plus metrics against the simulated ground truth.
# Outputs go under ${OUT:-demo_outputs}/. A second run resumes the finished run and retrains
# nothing; remove the folder to start again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-demo_outputs}
ptycho-simulate --out "$OUT/data/lines.npz" --probe curved
ptycho-launch --config examples/demo.yaml --local --runs-dir "$OUT/runs" --run-id demo \
  --set train_data_file="$OUT/data/lines.npz"
ptycho-infer --model "$OUT/runs/demo/model.ptpinn" --data "$OUT/data/lines.npz" --out "$OUT/recon" --accelerator auto
echo "demo finished: see $OUT/recon/amplitude.png, $OUT/recon/phase.png and $OUT/recon/metrics.json"

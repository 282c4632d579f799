#!/usr/bin/env bash
# The main job on the embedded default: set up, simulate a small "lines" scan, train
# locally (CPU or one GPU), reconstruct it, and write PNGs plus metrics against the
# ground truth. Outputs go under ${OUT:-demo_outputs}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-demo_outputs}
ptycho-simulate --out "$OUT/data/lines.npz"
ptycho-train --config examples/demo.yaml --train-data-file "$OUT/data/lines.npz" --output-dir "$OUT/run"
ptycho-infer --model "$OUT/run/model.ptpinn" --data "$OUT/data/lines.npz" --out "$OUT/recon"
echo "demo finished: see $OUT/recon/amplitude.png, $OUT/recon/phase.png and $OUT/recon/metrics.json"

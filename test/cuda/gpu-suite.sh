#!/usr/bin/env bash
# The CUDA test suite on the GPU machine (see ../shared/GPU.md): bash .gpu/run bash test/cuda/gpu-suite.sh
# Stage with test/cuda/stage-gpu.sh and build dist/ first; carry [".gpu", "dist"]. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/dimba-gpu-out}
mkdir -p "$out"
source test/cuda/gpu-env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
node dist/src/cli/main.js doctor 2>&1 | tee "$out/doctor.txt"
node dist/bench/cuda/warm-kernels.js 2>&1 | tee "$out/warm.txt"
# The CLI end to end on the GPU: a tiny dataset, `dimba train --device cuda` in bf16, `dimba generate --device cuda`.
cli=/tmp/dimba-cli; rm -rf "$cli"; mkdir -p "$cli"
node --input-type=module -e "import('$PWD/dist/test/train/helpers.js').then(async (h) => { const m = await h.makeTinyDataset('$cli/data', 32); const fs = await import('node:fs'); fs.writeFileSync('$cli/config.json', JSON.stringify(h.tinyConfigJson('$cli/run', m, { steps: 30, precision: 'bf16', checkpoint: { every: 10, keepLast: 2 }, samples: { prompts: ['a red square'], every: 30, steps: 4 } }))); })" \
  && node dist/src/cli/main.js train --config "$cli/config.json" --device cuda 2>&1 | tail -n 4 | tee "$out/cli-train.txt" \
  && node dist/src/cli/main.js generate "a red square" --model "$cli/run" --device cuda --steps 8 --seed 1 -n 2 --out "$cli/gen.png" 2>&1 | tail -n 3 | tee "$out/cli-generate.txt" \
  || echo "== CLI smoke failed"
start=$(date +%s)
node --test --test-reporter=tap --test-reporter-destination="$out/tap.log" \
  --test-reporter=spec --test-reporter-destination="$out/spec.log" dist/test/cuda/
rc=$?
echo "== CUDA suite: exit $rc in $(( $(date +%s) - start )) s"
grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo)' "$out/tap.log"
grep -hE 'device: |NVRTC [0-9]' "$out/tap.log" | head -3
if [ "$rc" -ne 0 ]; then
  echo "== failures (from spec.log)"
  sed -n '/failing tests:/,$p' "$out/spec.log" | grep -vE '^\s+at ' | head -c 9000
fi
exit $rc

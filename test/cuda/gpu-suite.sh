#!/usr/bin/env bash
# The CUDA test suite on the GPU machine (see ../shared/GPU.md): bash .gpu/run bash test/cuda/gpu-suite.sh
# Stage with test/cuda/stage-gpu.sh and build dist/ first; carry [".gpu", "dist"]. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/dimba-gpu-out}
mkdir -p "$out"
[ -d node_modules/koffi ] || cp -r .gpu/node_modules ./node_modules
export DIMBA_CACHE_DIR=${DIMBA_CACHE_DIR:-/tmp/dimba-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
node dist/src/cli/main.js doctor 2>&1 | tee "$out/doctor.txt"
node dist/bench/cuda/warm-kernels.js 2>&1 | tee "$out/warm.txt"
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

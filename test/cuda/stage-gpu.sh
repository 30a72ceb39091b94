#!/usr/bin/env bash
# Stages a GPU-machine run of the CUDA suite (see ../shared/GPU.md), from the project root:
#   bash test/cuda/stage-gpu.sh && npx tsc -p tsconfig.json
# then device run with carry [".gpu", "dist"] and command: bash .gpu/run bash test/cuda/gpu-suite.sh
# The GPU machine has no npm: runtime packages travel in .gpu/node_modules, leaving out the
# compiler, type packages and the large image/emoji data packages the CUDA suite never loads.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
../shared/gpu/stage
rm -rf .gpu/node_modules
mkdir -p .gpu/node_modules
for entry in node_modules/* node_modules/@*/*; do
  name=${entry#node_modules/}
  case "$name" in
    @*/*) ;;
    @*) continue ;;
  esac
  case "$name" in
    typescript|@types/*|@img/*|sharp|openmoji|emoji-datasource-*|.bin|.package-lock.json) continue ;;
  esac
  mkdir -p ".gpu/node_modules/$(dirname "$name")"
  cp -r "$entry" ".gpu/node_modules/$name"
done
du -sh .gpu/node_modules

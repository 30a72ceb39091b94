#!/usr/bin/env bash
# Stages a GPU-machine run (see ../shared/GPU.md), from the project root:
#   bash test/cuda/stage-gpu.sh && npx tsc -p tsconfig.json
# then device run with carry [".gpu", "dist"] and command: bash .gpu/run bash test/cuda/gpu-suite.sh
# The GPU machine has no npm: runtime packages travel as .gpu/modules.tar.xz (unpacked there by
# test/cuda/gpu-env.sh), leaving out the compiler, type packages and the large emoji data
# packages. sharp and its linux-x64 libvips go along (the trainer tests decode PNGs).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
../shared/gpu/stage
rm -rf .gpu/node_modules .gpu/modules.tar.xz
names=()
for entry in node_modules/* node_modules/@*/*; do
  name=${entry#node_modules/}
  case "$name" in
    @*/*) ;;
    @*) continue ;;
  esac
  case "$name" in
    typescript|@types/*|openmoji|emoji-datasource-*|.bin|.package-lock.json) continue ;;
    @img/*) case "$name" in @img/colour|@img/sharp-linux-x64|@img/sharp-libvips-linux-x64) ;; *) continue ;; esac ;;
  esac
  names+=("$name")
done
tar cf - -C node_modules "${names[@]}" | xz -T2 -6 > .gpu/modules.tar.xz
du -sh .gpu/modules.tar.xz .gpu

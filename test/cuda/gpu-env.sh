# Sourced by the GPU-machine scripts: unpacks the runtime packages staged by test/cuda/stage-gpu.sh
# and points the NVRTC cache at /tmp. Needs $OUT-independent paths only.
if [ ! -d node_modules/koffi ]; then
  mkdir -p node_modules
  xz -dc .gpu/modules.tar.xz | tar xf - -C node_modules
fi
export DIMBA_CACHE_DIR=${DIMBA_CACHE_DIR:-/tmp/dimba-cache}

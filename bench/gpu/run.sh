#!/usr/bin/env bash
# Issue 7's comparison on one GPU: our benchmarks (bench/cuda/*.ts) and the PyTorch reference
# (bench/reference/bench.py, eager and torch.compile) on the same card, then one table (last).
#
#   bash .gpu/run bash bench/gpu/run.sh --quick            # everything, within a time budget
#   bash .gpu/run bash bench/gpu/run.sh --part ours|ref|ref-eager|ref-compiled|check [--quick]
#
# Before (on the dev machine): bash test/cuda/stage-gpu.sh && npx tsc -p tsconfig.json; the device
# call carries [".gpu", "dist"]. On a machine with npm and a GPU, `npm run bench:gpu -- --quick`.
#
# --quick     fewer timed repetitions and a 510 s budget: each step runs under `timeout` with
#             what is left, steps that no longer fit are skipped and listed (not measured); the
#             table then shows n/a there. Run the missing part in another call with --part and
#             merge: node dist/bench/gpu/report.js DIR1/results.jsonl DIR2/results.jsonl
# --budget S  the budget in seconds (default: 510 with --quick, none otherwise)
# Environment: TRAIN_RES (256,512), TRAIN_BATCH (32,8), SAMPLE_BATCH (1,8), FIND_BATCH (e.g.
#             '32,48,64;8,12,16': each side's largest batch that fits, full runs), SDPA (cudnn),
#             SCAN_IMPL (chunked), PYTHON (python3), DIMBA_DIST (dist), SKIP_STEPS (step names to leave
#             out, e.g. 'ours-attention ours-scan' to time only the model steps against ref-compiled),
#             REF_EXTRA (more bench.py arguments, e.g. '--compile-scan 1').
#
# $OUT gets few files (the device tool returns a handful): results.jsonl (every record),
# bench.log (every step's output), table.md (the table), summary.json, gpu.txt.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-/tmp/dimba-bench-gpu}
work=$(mktemp -d /tmp/dimba-bench-work.XXXXXX)
mkdir -p "$out"
quick=0
part=all
budget=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --part) part=${2:?--part needs a value}; shift ;;
    --budget) budget=${2:?--budget needs seconds}; shift ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$part" in all|ours|ref|ref-eager|ref-compiled|check) ;; *) echo "run.sh: --part must be all, ours, ref, ref-eager, ref-compiled or check" >&2; exit 2 ;; esac
[ -n "$budget" ] || budget=$([ "$quick" = 1 ] && echo 510 || echo 1000000)
start=$(date +%s)
dist=${DIMBA_DIST:-dist}
results="$out/results.jsonl"
log="$out/bench.log"
: > "$results"
: > "$log"

if [ -f test/cuda/gpu-env.sh ]; then source test/cuda/gpu-env.sh; fi
py=${PYTHON:-python3}
if ! "$py" -c 'import torch' 2>/dev/null && [ -x /opt/torch/.venv/bin/python3 ]; then py=/opt/torch/.venv/bin/python3; fi
[ -f "$dist/bench/gpu/report.js" ] || { echo "run.sh: $dist/bench/gpu/report.js is missing: build first (npx tsc -p tsconfig.json)" >&2; exit 2; }

train_res=${TRAIN_RES:-256,512}
train_batch=${TRAIN_BATCH:-32,8}
sample_res=512
sample_batch=${SAMPLE_BATCH:-1,8}
sdpa=${SDPA:-cudnn}
scan_impl=${SCAN_IMPL:-chunked}
# BENCH_DEVICE=cpu: the same plumbing on tiny CPU workloads (Dimba-XS, small shapes), to check the
# script itself on a machine without a GPU (the reference needs a python3 with torch).
cpu=0
node_dev=(); ref_dev=(); ref_kernels=(); sample_extra=(); check_args=(--device cuda --preset Dimba-L-2 --depth 1 --res 128 --batch 2); check_ref=(--tol 2e-3)
if [ "${BENCH_DEVICE:-cuda}" = cpu ]; then
  cpu=1
  node_dev=(--device cpu --tiny); ref_dev=(--device cpu --preset Dimba-XS); ref_kernels=(--tiny --scan-dim 8)
  train_res=64; train_batch=2; sample_res=64; sample_batch=1,2; sample_extra=(--sample-steps 3)
  check_args=(--device cpu --preset Dimba-XS --res 64 --batch 2); check_ref=(--tol 2e-3 --device cpu)
fi
if [ "$quick" = 1 ]; then
  t_steps=3; t_warm=1; s_steps=1; s_warm=1; k_steps=10; k_warm=3
else
  t_steps=10; t_warm=2; s_steps=3; s_warm=1; k_steps=20; k_warm=5
fi
# Attention is also timed from CUDA-graph replays on both sides (cases "... (graph replay)"): the
# kernels alone, where a ~0.1 ms call timed call by call measures host work.
att_graphs=(); ref_att_graphs=()
if [ "$cpu" = 0 ]; then att_graphs=(--graphs); ref_att_graphs=(--cuda-graphs); fi
find_ours=(); find_ref=()
if [ -n "${FIND_BATCH:-}" ]; then find_ours=(--find-batch "$FIND_BATCH"); find_ref=(--find-batch "$FIND_BATCH"); fi

elapsed() { echo $(( $(date +%s) - start )); }
skipped=()

# step NAME MIN_SECONDS CMD...: runs CMD with what is left of the budget (30 s kept for the
# table), its JSON records appended to results.jsonl and its output to bench.log.
step() {
  local name=$1 need=$2
  shift 2
  if [[ " ${SKIP_STEPS:-} " == *" $name "* ]]; then
    echo "== $name: left out (SKIP_STEPS)" | tee -a "$log"
    return 0
  fi
  local left=$(( budget - $(elapsed) - 30 ))
  if [ "$left" -lt "$need" ]; then
    skipped+=("$name")
    echo "{\"impl\":\"run.sh\",\"kind\":\"skipped\",\"case\":\"$name\",\"error\":\"skipped: ${left}s of the time budget left, needs ~${need}s\"}" >> "$results"
    echo "== $name: skipped (${left}s left of the budget)" | tee -a "$log"
    return 0
  fi
  local t0
  t0=$(date +%s)
  echo "== $name ($(elapsed)s in, up to ${left}s): $*" | tee -a "$log"
  timeout --signal=TERM --kill-after=10 "$left" "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$?
  # The end of each output (the records themselves go to results.jsonl; compile logs can be long).
  { tail -n 300 "$work/$name.out"; tail -n 150 "$work/$name.err"; } >> "$log"
  node "$dist/bench/gpu/report.js" --records "$work/$name.out" >> "$results" 2>> "$log"
  echo "== $name: exit $rc after $(( $(date +%s) - t0 ))s" | tee -a "$log"
  if [ "$rc" -ne 0 ]; then
    tail -n 5 "$work/$name.err" | sed 's/^/   /'
    echo "{\"impl\":\"run.sh\",\"kind\":\"failed\",\"case\":\"$name\",\"error\":\"exit $rc (see bench.log)\"}" >> "$results"
  fi
}

ref=("$py" bench/reference/bench.py --json --sdpa "$sdpa" --scan-impl "$scan_impl" ${ref_dev[@]+"${ref_dev[@]}"} ${REF_EXTRA:-})

if [ "$cpu" = 1 ]; then echo "cpu (BENCH_DEVICE=cpu)" > "$out/gpu.txt"; else nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader > "$out/gpu.txt" 2>&1; fi
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' >> "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

want() { [ "$part" = all ] || [ "$part" = "$1" ] || { [ "$part" = ref ] && [[ "$1" == ref-* ]]; }; }

if want ours; then
  [ "$cpu" = 1 ] || step warm-kernels 30 node "$dist/bench/cuda/warm-kernels.js" --types bf16,f32
  step ours-attention 20 node "$dist/bench/cuda/attention-compare.js" --json --steps "$k_steps" --warmup "$k_warm" ${node_dev[@]+"${node_dev[@]}"} ${att_graphs[@]+"${att_graphs[@]}"}
  step ours-scan 20 node "$dist/bench/cuda/scan-compare.js" --json --steps "$k_steps" --warmup "$k_warm" ${node_dev[@]+"${node_dev[@]}"}
fi
if want ref-eager; then
  step ref-attention 20 "${ref[@]}" --attention --steps "$k_steps" --warmup "$k_warm" ${ref_kernels[@]+"${ref_kernels[@]}"} ${ref_att_graphs[@]+"${ref_att_graphs[@]}"}
  step ref-scan 30 "${ref[@]}" --scan-only --steps "$k_steps" --warmup "$k_warm" ${ref_kernels[@]+"${ref_kernels[@]}"}
fi
if want ours; then
  step ours-train 90 node "$dist/bench/cuda/train-step.js" --json --res "$train_res" --batch "$train_batch" ${find_ours[@]+"${find_ours[@]}"} --steps "$t_steps" --warmup "$t_warm" ${node_dev[@]+"${node_dev[@]}"}
fi
if want ref-eager; then
  step ref-train-eager 60 "${ref[@]}" --mode train --compile 0 --res "$train_res" --batch "$train_batch" ${find_ref[@]+"${find_ref[@]}"} --steps "$t_steps" --warmup "$t_warm"
fi
if want ours; then
  step ours-sample 60 node "$dist/bench/cuda/sample.js" --json --res "$sample_res" --batch "$sample_batch" --steps "$s_steps" --warmup "$s_warm" ${node_dev[@]+"${node_dev[@]}"} ${sample_extra[@]+"${sample_extra[@]}"}
fi
if want ref-eager; then
  step ref-sample-eager 45 "${ref[@]}" --mode sample --compile 0 --res "$sample_res" --batch "$sample_batch" --steps "$s_steps" --warmup "$s_warm" ${sample_extra[@]+"${sample_extra[@]}"}
fi
if want check; then
  # Equivalence: our CUDA float32 forward of a one-block Dimba-L-2 (full widths) against the reference's.
  step check-export 40 node "$dist/bench/cuda/export-check.js" --json "${check_args[@]}" --out "$work/check"
  step check-reference 30 "$py" bench/reference/bench.py --json --check "$work/check/weights.safetensors" --inputs "$work/check/inputs.safetensors" "${check_ref[@]}"
fi
if want ours && [ "$cpu" = 0 ]; then
  step ours-gemm 30 node "$dist/bench/cuda/gemm.js" --json
  step ours-launch 20 node "$dist/bench/cuda/launch-overhead.js" --json
fi

# Compiling takes minutes (static shapes per resolution and batch): last, so that a budget cut
# leaves everything else measured.
if want ref-compiled && [ "$cpu" = 0 ]; then
  step ref-train-compiled 120 "${ref[@]}" --mode train --compile 1 --res "$train_res" --batch "$train_batch" ${find_ref[@]+"${find_ref[@]}"} --steps "$t_steps" --warmup $(( t_warm + 1 ))
fi
if want ref-compiled && [ "$cpu" = 0 ]; then
  step ref-sample-compiled 90 "${ref[@]}" --mode sample --compile 1 --res 512 --batch "$sample_batch" --steps "$s_steps" --warmup "$s_warm"
  if [ "$quick" = 0 ]; then
    step ref-scan-compiled 120 "${ref[@]}" --scan-only --compile 1 --steps "$k_steps" --warmup "$k_warm"
  fi
fi

echo "== done in $(elapsed)s${skipped[*]+; skipped (budget): ${skipped[*]}}" | tee -a "$log"
node "$dist/bench/gpu/report.js" "$results" --summary "$out/summary.json" | tee "$out/table.md"
rm -rf "$work"

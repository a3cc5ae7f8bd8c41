#!/usr/bin/env bash
# The GPU run in one call of the device tool: check the machine, build for its GPU, a smoke
# test, the benchmark, the cuda tests, then compute-sanitizer; every step under a time limit,
# in that order (by value: a cut run keeps what came first).
#
#   bash benchmarks/gpu_run.sh              # on the GPU machine
#   bash benchmarks/gpu_run.sh --rehearse   # the same steps without a GPU (CPU rows, GPU-only steps skipped)
#
# The GPU machine reaches no package registry: the build uses what is installed there
# (pip install --no-build-isolation). What lands in $OUT (set by the device tool; default
# /tmp/fastpid-gpu-run) comes back, at most 8 files: summary.txt, build.log, smoke.log,
# bench.log, gpu-<device>.json, cuda-tests.log, sanitizers.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REHEARSE=0
case "${1:-}" in
  --rehearse) REHEARSE=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_run.sh [--rehearse]"; exit 2 ;;
esac
OUT="${OUT:-/tmp/fastpid-gpu-run}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

# Step limits in seconds; their sum is the budget, at most 480 so that a rerun fits in the
# same 15 minutes of device time. Measured on a GPU-less machine set up like the GPU machine:
# the sm_90-only build takes about 45 s on 2 cores (all three architectures one after another
# took about 150 s of nvcc alone).
L_CHECK=20 L_BUILD=150 L_SMOKE=30 L_BENCH=120 L_TESTS=60 L_MEMCHECK=30 L_INITCHECK=25 L_SYNCCHECK=20 L_RACECHECK=25
BUDGET=$((L_CHECK + L_BUILD + L_SMOKE + L_BENCH + L_TESTS + L_MEMCHECK + L_INITCHECK + L_SYNCCHECK + L_RACECHECK))
say() { echo "$*" | tee -a "$SUMMARY"; }
say "budget: $BUDGET s (check $L_CHECK, build $L_BUILD, smoke $L_SMOKE, bench $L_BENCH, tests $L_TESTS, memcheck $L_MEMCHECK, initcheck $L_INITCHECK, synccheck $L_SYNCCHECK, racecheck $L_RACECHECK)"
[ "$REHEARSE" = 1 ] && say "rehearsal: no GPU; the benchmark runs on the CPU device, GPU-only steps are skipped"
status=0
# run NAME LIMIT LOG COMMAND...: the command under `timeout`, its output into LOG (appended),
# its exit status and time into the summary.
run() {
  local name=$1 limit=$2 log=$3; shift 3
  local t0=$SECONDS
  echo "=== [$(date +%T)] $name (limit $limit s)" >>"$log"
  timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  local verdict=ok
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && verdict="cut at its limit"
  [ "$rc" -ne 0 ] && [ "$verdict" = ok ] && verdict="failed"
  say "step $name: rc=$rc, $((SECONDS - t0)) s of $limit: $verdict"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}
skip() { say "step $1: skipped ($2)"; }

# --- check: the assumptions about the machine (nvcc, torch with CUDA, the build tools'
# versions, a writable site-packages), each failure one line ---------------------------------------
CHECKS=(--check); [ "$REHEARSE" = 1 ] && CHECKS+=(--rehearse)
run check "$L_CHECK" "$OUT/build.log" "$PY" -m benchmarks.bench_gpu "${CHECKS[@]}"
check_rc=$?
grep -E "^(check|nvcc|torch|site-packages|scikit_build_core|pybind11|numpy):" "$OUT/build.log" | tee -a "$SUMMARY" >/dev/null
[ "$check_rc" -eq 0 ] || { say "the machine is not as assumed (build.log); stopping"; exit 1; }

# --- build: the GPU present only, nvcc's report kept --------------------------------------------
ARCH=90
if [ "$REHEARSE" = 0 ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [ -n "$cap" ] && ARCH=$cap
  say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
fi
TARGET=()
if ! "$PY" -c "import os, site, sys; sys.exit(not any(os.access(p, os.W_OK) for p in site.getsitepackages() if os.path.isdir(p)))"; then
  TARGET=(--target "$HOME/.fastpid-site"); export PYTHONPATH="$HOME/.fastpid-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export FASTPID_CUDA=ON FASTPID_CUDA_ARCHITECTURES="${ARCH}-real" FASTPID_CUDA_VERBOSE=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
say "build: sm_$ARCH only, $(nproc) parallel jobs"
if run build "$L_BUILD" "$OUT/build.log" "$PY" -m pip install --no-build-isolation --no-deps -v "${TARGET[@]}" .; then
  grep -E "ptxas info +: (Compiling|Used)" "$OUT/build.log" \
    | sed -E "s/'_ZN7fastpid[^']*(ProxyKernel|RefineKernel|ExactKernel)[^']*'/\1/; s/'_ZN7fastpid[^']*(value_grad_kernel|union_batch_kernel)[^']*'/\1/" | tee -a "$SUMMARY" >/dev/null
  "$PY" -c "import fastpid; print('build_info:', fastpid.build_info())" 2>&1 | tee -a "$SUMMARY" >/dev/null
else
  say "the build failed (build.log); stopping"; exit 1
fi

# --- smoke, benchmark, tests --------------------------------------------------------------------
DEVICE=(); QUICK=()
[ "$REHEARSE" = 1 ] && DEVICE=(--device cpu) && QUICK=(--quick)
run smoke "$L_SMOKE" "$OUT/smoke.log" "$PY" -m benchmarks.bench_gpu --smoke "${DEVICE[@]}"
grep "^smoke" "$OUT/smoke.log" | tee -a "$SUMMARY" >/dev/null
run bench "$L_BENCH" "$OUT/bench.log" "$PY" -m benchmarks.bench_gpu "${DEVICE[@]}" "${QUICK[@]}" --budget $((L_BENCH * 6 / 10)) --out-dir "$OUT"
grep -E "agreement|wrote|budget" "$OUT/bench.log" | tee -a "$SUMMARY" >/dev/null
# every test named as it runs (-v), each under its own 30 s limit (tests/conftest.py); without a
# GPU they are collected and skip themselves
run tests "$L_TESTS" "$OUT/cuda-tests.log" env FASTPID_TEST_TIMEOUT=30 "$PY" -m pytest -v -m cuda tests -p no:cacheprovider
grep -E "(passed|failed|skipped|error)( |,|$)" "$OUT/cuda-tests.log" | tail -1 | tee -a "$SUMMARY" >/dev/null

# --- compute-sanitizer: memcheck without torch's caching allocator (so an overrun of a block's
# workspace is an overrun of its own allocation), initcheck, synccheck, racecheck last ----------
SAN="$OUT/sanitizers.log"
: >"$SAN"
if [ "$REHEARSE" = 1 ] || ! command -v compute-sanitizer >/dev/null 2>&1; then
  why="no GPU"; [ "$REHEARSE" = 0 ] && why="compute-sanitizer not found" && status=1
  for tool in memcheck initcheck synccheck racecheck; do skip "$tool" "$why"; done
  echo "compute-sanitizer: skipped ($why)" >>"$SAN"
else
  for spec in "memcheck $L_MEMCHECK" "initcheck $L_INITCHECK" "synccheck $L_SYNCCHECK" "racecheck $L_RACECHECK"; do
    set -- $spec
    run "$1" "$2" "$SAN" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$1" --error-exitcode 9 "$PY" -m benchmarks.bench_gpu --sanitize
    grep -E "SUMMARY" "$SAN" | tail -1 | sed "s/^/  $1: /" | tee -a "$SUMMARY" >/dev/null
  done
fi
say "files: $(cd "$OUT" && ls | tr '\n' ' ')"
say "done: status $status"
exit $status

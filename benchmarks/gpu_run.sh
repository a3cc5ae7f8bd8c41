#!/usr/bin/env bash
# One call on the GPU machine (device tool): build with CUDA, run the cuda tests, run the new
# kernels under compute-sanitizer, benchmark, and write benchmarks/results/gpu-<device>.json.
#
#   bash benchmarks/gpu_run.sh            # about 5 minutes on an H100
#
# The GPU machine reaches no package registry: the build uses what is installed there
# (pip install --no-build-isolation). Everything written under $OUT (when the device tool sets
# it) comes back: the logs and the JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
step() { echo; echo "=== [$(date +%T)] $*"; }
status=0

step "build (FASTPID_CUDA=ON)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
FASTPID_CUDA=ON "$PY" -m pip install --no-build-isolation --no-deps -q . >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
"$PY" -c "import fastpid, torch; print(fastpid.build_info(), torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" || exit 1

step "cuda tests"
"$PY" -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tee "$OUT/cuda-tests.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "compute-sanitizer (memcheck, racecheck, synccheck) on proxy, refine and exact"
if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck synccheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$PY" -m benchmarks.bench_gpu --sanitize >"$OUT/sanitizer-$tool.log" 2>&1
    rc=$?
    echo "$tool: exit $rc ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitizer-$tool.log") clean summaries)"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.log" | tail -2
    [ "$rc" -eq 0 ] || status=1
  done
else
  echo "compute-sanitizer not found"; status=1
fi

step "benchmark"
"$PY" -m benchmarks.bench_gpu 2>&1 | tee "$OUT/bench-gpu.log" | tail -20
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
cp benchmarks/results/gpu-*.json "$OUT"/ 2>/dev/null || true
step "done (status $status)"
exit $status

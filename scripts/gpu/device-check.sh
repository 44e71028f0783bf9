#!/usr/bin/env bash
# The one script to run on a lent GPU machine, from the repo root:
#   bash scripts/gpu/device-check.sh          (through the device tool: timeout_s 480)
# 0. prints the GPU, driver and CUDA versions (driver's CUDA, toolkit/runtime, PyTorch);
# 1. builds the CUDA test/bench binaries (and the Node module where Node and node_modules are
#    there); 2. runs the CUDA tests (each kernel and each CudaBackend method against the CPU
#    engine, and whole-model steps CPU vs CUDA); 3. times whole-model training steps on the CUDA
#    backend (tokens/s, small model and a Qwen3-0.6B shape, B 4, T 1024); 4. times our block-sparse
#    attention at 8K/32K/128K (top-k 64 blocks of 64) and dense, then FlexAttention on the same
#    BlockMask and SDPA flash (dense) with the machine's PyTorch; 5. writes golden fixtures of tiny
#    HF models. Everything lands in $OUT (or ./gpu-out).
#
# Time: the whole run is budgeted (GPU_CHECK_BUDGET_S, default 420 s), each stage under its own
# `timeout` capped by what is left; a stage that would start with under 20 s left is skipped and
# listed. With a 15-minute device allowance, call it with timeout_s 480: that leaves room for the
# machine's start and one rerun. A rerun can pick stages: GPU_CHECK_STAGES="build tests" (default
# "build tests bench torch golden"); build-cuda.mjs rebuilds only what changed.
#
# Exit status: 0 only when the build succeeded, no test failed, and no test was skipped while
# nvidia-smi lists a GPU (skips there mean the device was unusable, e.g. a CUDA runtime newer
# than the driver supports: compare the versions printed first). Skipped stages are listed with why.
#
# Node: build-cuda.mjs builds the binaries without node-addon-api (a copy without node_modules)
# and skips only the Node module. Where Node is missing, or build-cuda.mjs leaves no binaries,
# cuda_tests and cuda_bench are built by build_without_node below, with the flags of
# scripts/build-cuda.mjs (keep the two in step), compiles in parallel (xargs -P, one per core).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
STAGES=" ${GPU_CHECK_STAGES:-build tests bench torch golden} "
mkdir -p "$OUT/masks"
skipped=()
failures=()
skip() { skipped+=("$1"); echo "device-check: skipping $1"; }
failed() { failures+=("$1"); echo "device-check: FAIL $1"; }
want() { [[ "$STAGES" == *" $1 "* ]]; }

# stage NAME LIMIT_S LOG CMD...: CMD under `timeout`, at most LIMIT_S and what is left of the
# budget, output shown and kept in LOG; returns CMD's status (124: timed out, 125: not started).
stage() {
  local name=$1 limit=$2 log=$3 rest rc
  shift 3
  rest=$((BUDGET - SECONDS))
  if [ "$rest" -lt 20 ]; then
    skip "$name: only ${rest}s of the ${BUDGET}s budget left"
    return 125
  fi
  [ "$limit" -gt "$rest" ] && limit=$rest
  echo "device-check: $name (at most ${limit}s; ${SECONDS}s elapsed)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "device-check: $name ran out of its ${limit}s"
  return "$rc"
}

# cuda_tests and cuda_bench (and their objects) under native/build/cuda, as build-cuda.mjs builds them.
build_without_node() {
  local cuda=native/cuda src=native/src out=native/build/cuda jobs
  jobs=$(nproc 2>/dev/null || echo 4)
  mkdir -p "$out"
  local nvcc_home cuda_inc="" cuda_lib="" r
  nvcc_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  for r in ${CUDA_HOME:-} /usr/local/cuda "$nvcc_home"; do
    [ -z "$cuda_inc" ] && [ -f "$r/include/cuda_runtime.h" ] && cuda_inc=$r/include
    for l in "$r/lib64" "$r/lib"; do [ -z "$cuda_lib" ] && [ -f "$l/libcudart_static.a" ] && cuda_lib=$l; done
  done
  if [ -z "$cuda_inc" ] || [ -z "$cuda_lib" ]; then
    echo "build: CUDA runtime headers or libcudart_static.a not found (CUDA_HOME, /usr/local/cuda, $nvcc_home)"
    return 1
  fi
  local gencode="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"
  local nvcc_flags="-std=c++17 -O3 -Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter -Werror all-warnings $gencode -I $cuda -I $src"
  local cxx="-std=c++17 -O2 -fPIC -pthread -Wall -Wno-unused-parameter -I $cuda -I $src -I $cuda_inc"
  local strict="-Wextra -Werror"  # our own C++ files (not the CPU engine's, built with -w)
  local cmds=() cu_objs=() cpu_objs=() f o
  for f in "$cuda"/*.cu; do
    o=$out/$(basename "${f%.cu}").o
    cu_objs+=("$o")
    cmds+=("nvcc $nvcc_flags -c $f -o $o")
  done
  for f in "$src"/*.cpp; do
    o=$out/cpu_$(basename "${f%.cpp}").o
    cpu_objs+=("$o")
    cmds+=("g++ $cxx -O3 -w -c $f -o $o")
  done
  for f in cuda_tests cuda_backend_tests cuda_model_tests cuda_precision_tests cuda_bench; do
    cmds+=("g++ $cxx $strict -I native/test -c $cuda/$f.cpp -o $out/$f.o")
  done
  echo "build: ${#cmds[@]} compiles, $jobs at a time"
  rm -f "$out/cuda_tests" "$out/cuda_bench"  # never run a stale binary after a failed build
  # A failed command is named; xargs then exits non-zero once every job has ended.
  printf '%s\0' "${cmds[@]}" | xargs -0 -n 1 -P "$jobs" sh -c 'eval "$1" || { echo "build: FAILED: $1"; exit 1; }' sh || return 1
  local link="-L$cuda_lib -lcudart_static -ldl -lrt -pthread"
  g++ -o "$out/cuda_tests" "$out/cuda_tests.o" "$out/cuda_backend_tests.o" "$out/cuda_model_tests.o" "$out/cuda_precision_tests.o" "${cu_objs[@]}" "${cpu_objs[@]}" $link || return 1
  g++ -o "$out/cuda_bench" "$out/cuda_bench.o" "${cu_objs[@]}" "${cpu_objs[@]}" $link || return 1
  echo "build: built $out/cuda_tests and $out/cuda_bench"
}
export -f build_without_node

# ------------------------------------------------------------------ 0. versions
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
{
  echo "device-check: $gpus GPU(s) listed by nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null ||
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  cv=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -1)
  echo "driver supports up to: ${cv:-unknown (no nvidia-smi)}"
  echo "toolkit (the static runtime linked into the binaries): $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'nvcc not found')"
  echo "node: $(node --version 2>/dev/null || echo 'not installed'); node_modules: $([ -d node_modules ] && echo present || echo absent)"
  echo "python: $(python3 -c 'import importlib.util as u, sys; print(sys.version.split()[0], *[m + ("" if u.find_spec(m) else " missing") for m in ("torch", "transformers")])' 2>/dev/null || echo 'python3 not available')"
  python3 -c 'import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)' 2>/dev/null || true
} | tee "$OUT/device.txt"

# ------------------------------------------------------------------ 1. build
bins_ok() { [ -x native/build/cuda/cuda_tests ] && [ -x native/build/cuda/cuda_bench ]; }
built=false
if want build; then
  if command -v node >/dev/null 2>&1; then
    stage build 300 "$OUT/build.txt" node scripts/build-cuda.mjs && bins_ok && built=true
    if ! $built && [ "$((BUDGET - SECONDS))" -gt 120 ]; then
      echo "device-check: build-cuda.mjs left no binaries; building them without Node"
      stage build-without-node 300 "$OUT/build-without-node.txt" bash -c build_without_node && bins_ok && built=true
    fi
  else
    skip "the Node module native/build/Release/sparse_cuda.node: node is not installed; cuda_tests and cuda_bench are built with nvcc and g++ directly"
    stage build-without-node 300 "$OUT/build.txt" bash -c build_without_node && bins_ok && built=true
  fi
  $built || failed "build: the CUDA binaries were not built (see $OUT/build*.txt)"
else
  bins_ok && built=true
fi

# ------------------------------------------------------------------ 2. tests
if want tests; then
  if $built; then
    rm -f "$OUT/cuda-counts.json"
    stage cuda-tests 240 "$OUT/cuda-tests.txt" native/build/cuda/cuda_tests "$OUT/cuda-counts.json"
    rc=$?
    count() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$OUT/cuda-counts.json" 2>/dev/null; }
    n_failed=$(count failed)
    n_skipped=$(count skipped)
    if [ -z "$n_failed" ]; then
      failed "cuda tests: no counts written (exit $rc; see $OUT/cuda-tests.txt)"
    else
      [ "$rc" -ne 0 ] || [ "$n_failed" -gt 0 ] && failed "cuda tests: $n_failed failed (exit $rc)"
      if [ "$n_skipped" -gt 0 ] && [ "$gpus" -gt 0 ]; then
        reason=$(grep -m1 '^SKIP ' "$OUT/cuda-tests.txt" | sed 's/^SKIP [^:]*: //')
        failed "cuda tests: $n_skipped skipped although nvidia-smi lists $gpus GPU(s): $reason (driver vs toolkit versions above)"
      fi
    fi
  else
    skip "the CUDA tests: nothing was built"
  fi
fi

# ------------------------------------------------------------------ 3, 4. timings
if want bench; then
  if $built; then
    stage train-step 120 "$OUT/train-step.jsonl" native/build/cuda/cuda_bench --train-step small qwen3-0.6b
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 125 ] && failed "training-step timings: exit $rc (see $OUT/train-step.jsonl)"
    stage attention-bench 120 "$OUT/ours.jsonl" native/build/cuda/cuda_bench "$OUT/masks" 8192 32768 131072
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 125 ] && failed "attention timings: exit $rc (see $OUT/ours.jsonl)"
  else
    skip "the CUDA timings: nothing was built"
  fi
fi
# The Python modules of "$@" that cannot be imported, joined with "and" (empty when all can).
py_missing() {
  command -v python3 >/dev/null 2>&1 || { echo python3; return; }
  python3 -c "import importlib.util as u, sys; print(' and '.join(x for x in sys.argv[1:] if u.find_spec(x) is None))" "$@"
}
if want torch; then
  if missing=$(py_missing torch); [ -z "$missing" ]; then
    stage flex-attention 120 "$OUT/torch.jsonl" env PYTHONUNBUFFERED=1 python3 scripts/gpu/compare_flex.py "$OUT/masks" 8192 32768 131072
    rc=$?  # PyTorch's own failures (an old torch without FlexAttention) are reported, not failed
    [ "$rc" -ne 0 ] && [ "$rc" -ne 125 ] && skip "FlexAttention/SDPA timings: exit $rc (see $OUT/torch.jsonl)"
  else
    skip "FlexAttention/SDPA timings: python3 lacks $missing"
  fi
fi

# ------------------------------------------------------------------ 5. golden fixtures
if want golden; then
  if missing=$(py_missing torch transformers); [ -z "$missing" ]; then
    stage golden 90 "$OUT/golden.txt" env PYTHONUNBUFFERED=1 python3 scripts/gpu/make_golden.py "$OUT/golden"
    rc=$?
    if [ "$rc" -eq 3 ]; then skip "golden fixtures: $(tail -1 "$OUT/golden.txt")"
    elif [ "$rc" -ne 0 ] && [ "$rc" -ne 125 ]; then failed "golden fixtures: exit $rc (see $OUT/golden.txt)"; fi
  else
    skip "golden fixtures: python3 lacks $missing (pip install ${missing// and / })"
  fi
fi

echo "device-check: ${SECONDS}s of the ${BUDGET}s budget used"
if [ ${#skipped[@]} -eq 0 ]; then
  echo "device-check: nothing skipped"
else
  echo "device-check: skipped ${#skipped[@]}:"
  printf '  - %s\n' "${skipped[@]}"
fi
if [ ${#failures[@]} -gt 0 ]; then
  echo "device-check: FAILED (${#failures[@]}):"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "device-check: OK"

#!/usr/bin/env bash
# The one script to run on a lent GPU machine (device tool), from the repo root:
#   bash scripts/gpu/device-check.sh
# 1. builds the CUDA module and test/bench binaries; 2. runs the CUDA tests (each kernel and each
# CudaBackend method against the CPU engine, and whole-model steps CPU vs CUDA); 3. times
# whole-model training steps on the CUDA backend (tokens/s, small model and a Qwen3-0.6B shape,
# B 4, T 1024); 4. times our block-sparse attention at 8K/32K/128K (top-k 64 blocks of 64) and
# dense, then FlexAttention on the same BlockMask and SDPA flash (dense) with the machine's
# PyTorch; 5. writes golden fixtures of tiny HF models. Everything lands in $OUT (or ./gpu-out).
#
# Works without Node.js (a machine with only python, PyTorch, nvcc and g++): then cuda_tests and
# cuda_bench are built by build_without_node below, with the flags of scripts/build-cuda.mjs
# (keep the two in step), compiles run in parallel (xargs -P, one job per core), and only the
# Node module sparse_cuda.node is skipped. Whatever is skipped is listed at the end, with why.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT/masks"
skipped=()
skip() { skipped+=("$1"); echo "device-check: skipping $1"; }

# cuda_tests and cuda_bench (and their objects) under native/build/cuda, as build-cuda.mjs builds them.
build_without_node() {
  local root=$PWD cuda=native/cuda src=native/src out=native/build/cuda jobs
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
  for f in cuda_tests cuda_backend_tests cuda_model_tests cuda_bench; do
    cmds+=("g++ $cxx $strict -I native/test -c $cuda/$f.cpp -o $out/$f.o")
  done
  echo "build: ${#cmds[@]} compiles, $jobs at a time"
  rm -f "$out/cuda_tests" "$out/cuda_bench"  # never run a stale binary after a failed build
  # A failed command is named; xargs then exits non-zero once every job has ended.
  printf '%s\0' "${cmds[@]}" | xargs -0 -n 1 -P "$jobs" sh -c 'eval "$1" || { echo "build: FAILED: $1"; exit 1; }' sh || return 1
  local link="-L$cuda_lib -lcudart_static -ldl -lrt -pthread"
  g++ -o "$out/cuda_tests" "$out/cuda_tests.o" "$out/cuda_backend_tests.o" "$out/cuda_model_tests.o" "${cu_objs[@]}" "${cpu_objs[@]}" $link || return 1
  g++ -o "$out/cuda_bench" "$out/cuda_bench.o" "${cu_objs[@]}" "${cpu_objs[@]}" $link || return 1
  echo "build: built $out/cuda_tests and $out/cuda_bench (${SECONDS}s since the script started)"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
if command -v node >/dev/null 2>&1; then
  node scripts/build-cuda.mjs 2>&1 | tail -20 | tee "$OUT/build.txt"
else
  skip "the Node module native/build/Release/sparse_cuda.node: node is not installed (it needs Node's headers); cuda_tests and cuda_bench are built with nvcc and g++ directly"
  build_without_node 2>&1 | tail -40 | tee "$OUT/build.txt"
fi
if [ -x native/build/cuda/cuda_tests ]; then
  native/build/cuda/cuda_tests "$OUT/cuda-counts.json" 2>&1 | tee "$OUT/cuda-tests.txt"
  native/build/cuda/cuda_bench --train-step small qwen3-0.6b 2>&1 | tee "$OUT/train-step.jsonl"
  native/build/cuda/cuda_bench "$OUT/masks" 8192 32768 131072 2>&1 | tee "$OUT/ours.jsonl"
else
  skip "the CUDA tests and timings: the build failed (see $OUT/build.txt)"
fi
if python3 -c 'import torch' >/dev/null 2>&1; then
  PYTHONUNBUFFERED=1 python3 scripts/gpu/compare_flex.py "$OUT/masks" 8192 32768 131072 2>&1 | tee "$OUT/torch.jsonl"
  PYTHONUNBUFFERED=1 python3 scripts/gpu/make_golden.py "$OUT/golden" 2>&1 | tail -5
else
  skip "FlexAttention/SDPA timings and golden fixtures: python3 with torch is not available"
fi
if [ ${#skipped[@]} -eq 0 ]; then
  echo "device-check: nothing skipped"
else
  echo "device-check: skipped ${#skipped[@]}:"
  printf '  - %s\n' "${skipped[@]}"
fi

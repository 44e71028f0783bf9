#!/bin/sh
# Builds and runs the engine-vs-OpenBLAS SGEMM comparison (needs libopenblas-dev). Not part of the build.
set -e
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/sparse-studio-bench"; mkdir -p "$out"
g++ -std=c++17 -O3 -pthread -I src -I /usr/include/x86_64-linux-gnu/openblas-pthread \
  bench/gemm_vs_openblas.cpp src/gemm.cpp src/simd.cpp src/parallel.cpp -o "$out/gemm_vs_openblas" -lopenblas
OPENBLAS_NUM_THREADS=${THREADS:-2} SPARSE_STUDIO_THREADS=${THREADS:-2} "$out/gemm_vs_openblas" "${1:-3}"

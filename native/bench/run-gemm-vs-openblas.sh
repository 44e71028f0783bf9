#!/bin/sh
# Builds and runs the engine-vs-OpenBLAS SGEMM comparison (OpenBLAS loaded at run time: apt-get
# install libopenblas0-pthread). Not part of the build.
#   run-gemm-vs-openblas.sh [REPS [M,N,K,LAYOUT ...]]   default: the shapes of `bench gemm`
set -e
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/sparse-studio-bench"; mkdir -p "$out"
g++ -std=c++17 -O3 -pthread -I src bench/gemm_vs_openblas.cpp src/*.cpp -o "$out/gemm_vs_openblas" -ldl
reps="${1:-3}"; [ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
  # demo model (d=128, 1024 tokens) and d=1024 model (4096 tokens): forward X W^T (nt), weight gradient dY^T X (tn)
  set -- 1024,128,128,nt 1024,64,128,nt 1024,384,128,nt 1024,128,384,nt 1024,4096,128,nt \
    128,128,1024,tn 64,128,1024,tn 384,128,1024,tn 128,384,1024,tn 4096,128,1024,tn \
    4096,1024,1024,nt 4096,512,1024,nt 4096,2816,1024,nt 4096,1024,2816,nt 4096,32000,1024,nt \
    1024,1024,4096,tn 512,1024,4096,tn 2816,1024,4096,tn 1024,2816,4096,tn 32000,1024,4096,tn
fi
SPARSE_STUDIO_THREADS=${THREADS:-2} "$out/gemm_vs_openblas" "$reps" "$@"

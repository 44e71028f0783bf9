#!/usr/bin/env bash
# The one script to run on a lent GPU machine (device tool), from the repo root:
#   bash scripts/gpu/device-check.sh
# 1. builds the CUDA module and test/bench binaries; 2. runs the CUDA tests (each kernel and each
# CudaBackend method against the CPU engine, and whole-model steps CPU vs CUDA); 3. times
# whole-model training steps on the CUDA backend (tokens/s, small model and a Qwen3-0.6B shape,
# B 4, T 1024); 4. times our block-sparse attention at 8K/32K/128K (top-k 64 blocks of 64) and
# dense, then FlexAttention on the same BlockMask and SDPA flash (dense) with the machine's
# PyTorch; 5. writes golden fixtures of tiny HF models. Everything lands in $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT/masks"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
node scripts/build-cuda.mjs 2>&1 | tail -20 | tee "$OUT/build.txt"
native/build/cuda/cuda_tests "$OUT/cuda-counts.json" 2>&1 | tee "$OUT/cuda-tests.txt"
native/build/cuda/cuda_bench --train-step small qwen3-0.6b 2>&1 | tee "$OUT/train-step.jsonl"
native/build/cuda/cuda_bench "$OUT/masks" 8192 32768 131072 2>&1 | tee "$OUT/ours.jsonl"
PYTHONUNBUFFERED=1 python3 scripts/gpu/compare_flex.py "$OUT/masks" 8192 32768 131072 2>&1 | tee "$OUT/torch.jsonl"
PYTHONUNBUFFERED=1 python3 scripts/gpu/make_golden.py "$OUT/golden" 2>&1 | tail -5

// Shared by every .cu file of the CUDA backend.
// Errors never abort: CUDA_TRY records file:line and the CUDA message in a thread-local
// Status and returns it, the launchers return Status, and the binding turns it into a JS Error.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

namespace cuda_backend {

struct Status {
  bool ok = true;
  std::string message;
  static Status success() { return {}; }
  static Status error(const std::string& m) { return {false, m}; }
};

inline Status status_from(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return Status::success();
  return Status::error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " + cudaGetErrorString(err));
}

}  // namespace cuda_backend

#define CUDA_TRY(expr)                                                                          \
  do {                                                                                          \
    cudaError_t err_ = (expr);                                                                  \
    if (err_ != cudaSuccess) return ::cuda_backend::status_from(err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors surface here, execution errors at the next sync.
#define CUDA_TRY_LAUNCH() CUDA_TRY(cudaGetLastError())

#define STATUS_TRY(expr)                     \
  do {                                       \
    ::cuda_backend::Status st_ = (expr);     \
    if (!st_.ok) return st_;                 \
  } while (0)

__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The CUDA implementation of engine::Backend (native/src/backend.h), built into the CUDA module
// (sparse_cuda.node) and the CUDA test/bench binaries. The engine addon reaches it only through
// the C factory below (dlopen + dlsym), so this module uses nothing of the engine but
// header-inline parts (the Backend class, BlockMask and RopeTable fields).
#pragma once
#include <memory>

#include "backend.h"

namespace cuda_backend {

// A CUDA backend on device 0 computing matrix products at `precision` (attention always in bf16),
// switchable later with set_precision.
// Throws std::runtime_error with a one-line reason when no usable device exists.
std::unique_ptr<engine::Backend> make_cuda_backend(engine::Precision precision);

}  // namespace cuda_backend

// SPARSE_STUDIO_CUDA_FACTORY: precision is (int)engine::Precision (0 fp32, 1 bf16, 2 fp16).
// Returns a new backend (the caller deletes it), or nullptr with a one-line reason in `error`.
extern "C" __attribute__((visibility("default"))) engine::Backend* sparse_studio_create_cuda_backend(int precision, char* error,
                                                                                                    int error_len);
// SPARSE_STUDIO_CUDA_INTERFACE: the engine::kBackendInterfaceVersion this module was built against.
extern "C" __attribute__((visibility("default"))) int sparse_studio_cuda_backend_interface();

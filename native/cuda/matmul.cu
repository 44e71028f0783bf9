// Matrix products of the CUDA backend and device discovery.
// cuBLAS is loaded at run time (dlopen) so the module builds and loads without it; when it is
// missing, our own tensor-core (wmma, bf16 in, fp32 accumulate) kernel does the bf16 products
// and a plain tiled fp32 SGEMM (correctness over speed) the fp32 ones.
#include <dlfcn.h>
#include <mma.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "ops_cuda.h"

namespace cuda_backend {

// ------------------------------------------------------------------ device discovery
DeviceInfo device_info() {
  DeviceInfo info;
  cudaError_t err = cudaGetDeviceCount(&info.count);
  if (err != cudaSuccess) {
    info.count = 0;
    info.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return info;
  }
  if (info.count == 0) {
    info.reason = "no CUDA device present";
    return info;
  }
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    info.reason = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(err);
    return info;
  }
  info.available = prop.major >= 8;
  if (!info.available) info.reason = "device is older than sm_80 (Ampere), which this build targets";
  info.name = prop.name;
  info.sm_major = prop.major;
  info.sm_minor = prop.minor;
  info.memory_bytes = prop.totalGlobalMem;
  return info;
}

const char* compiled_archs() { return "sm_80 sm_90 compute_90"; }

// ------------------------------------------------------------------ cuBLAS through dlopen
namespace {
// The few cuBLAS declarations we need, with their values from cublas_api.h (cublasOperation_t,
// cublasComputeType_t, cublasGemmAlgo_t; unchanged from CUDA 11 through 13).
using cublasHandle = void*;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kCompute32F = 68;          // CUBLAS_COMPUTE_32F
constexpr int kCompute32FFast16F = 74;   // CUBLAS_COMPUTE_32F_FAST_16F
constexpr int kCompute32FFast16BF = 75;  // CUBLAS_COMPUTE_32F_FAST_16BF (77 is _FAST_TF32)
constexpr int kGemmDefault = -1;         // CUBLAS_GEMM_DEFAULT
using CreateFn = int (*)(cublasHandle*);
using SetStreamFn = int (*)(cublasHandle, cudaStream_t);
using GemmExFn = int (*)(cublasHandle, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                         const void*, void*, int, int, int, int);

struct Cublas {
  bool loaded = false;
  cublasHandle handle = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
};

Cublas& cublas() {
  static Cublas lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    void* so = nullptr;
    for (const char* n : names)
      if ((so = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
    if (!so) return;
    auto create = (CreateFn)dlsym(so, "cublasCreate_v2");
    lib.set_stream = (SetStreamFn)dlsym(so, "cublasSetStream_v2");
    lib.gemm_ex = (GemmExFn)dlsym(so, "cublasGemmEx");
    if (!create || !lib.set_stream || !lib.gemm_ex || create(&lib.handle) != 0) return;
    lib.loaded = true;
  });
  return lib;
}

// ================================================================== wmma GEMM kernel
// out (N, OC) = inp (N, C) @ weight (OC, C)^T. A CTA computes a 64x64 tile with 4 warps
// (each 32x32 = 2x2 fragments of 16x16), stepping K by 32 through shared memory; edges are
// zero-padded in shared memory so any N, C, OC works.
using namespace nvcuda;
constexpr int kTile = 64, kStep = 32;

__global__ void matmul_wmma_kernel(float* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N, int C, int OC) {
  __shared__ __nv_bfloat16 a_tile[kTile][kStep + 8];  // rows of inp
  __shared__ __nv_bfloat16 b_tile[kTile][kStep + 8];  // rows of weight (= columns of B)
  __shared__ float c_tile[kTile][kTile + 4];
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  const int warp = threadIdx.x / 32;
  const int wr = (warp / 2) * 32, wc = (warp % 2) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);
  const __nv_bfloat16 zero = __float2bfloat16(0.f);
  for (int k0 = 0; k0 < C; k0 += kStep) {
    for (int e = threadIdx.x; e < kTile * kStep; e += blockDim.x) {
      const int r = e / kStep, c = e % kStep;
      a_tile[r][c] = (row0 + r < N && k0 + c < C) ? inp[(int64_t)(row0 + r) * C + k0 + c] : zero;
      b_tile[r][c] = (col0 + r < OC && k0 + c < C) ? weight[(int64_t)(col0 + r) * C + k0 + c] : zero;
    }
    __syncthreads();
    for (int kk = 0; kk < kStep; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &a_tile[wr + i * 16][kk], kStep + 8);
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &b_tile[wc + j * 16][kk], kStep + 8);
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(&c_tile[wr + i * 16][wc + j * 16], acc[i][j], kTile + 4, wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * kTile; e += blockDim.x) {
    const int r = e / kTile, c = e % kTile;
    if (row0 + r < N && col0 + c < OC) out[(int64_t)(row0 + r) * OC + col0 + c] = c_tile[r][c];
  }
}

// ================================================================== fp32 SGEMM fallback
// Row-major C (M, N) = alpha * op(A) op(B) + beta * C. 16x16 output tile per CTA, one element
// per thread, K stepped by 16 through shared memory (zero-padded edges). Sums in k order.
constexpr int kSg = 16;
__global__ void sgemm_kernel(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                             float beta, float* C, int ldc) {
  __shared__ float as[kSg][kSg + 1];  // as[i][kk] = op(A)(m0 + i, k0 + kk)
  __shared__ float bs[kSg][kSg + 1];  // bs[kk][j] = op(B)(k0 + kk, n0 + j)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m = blockIdx.y * kSg + ty, n = blockIdx.x * kSg + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += kSg) {
    {  // op(A)(blockIdx.y * kSg + ty, k0 + tx)
      const int am = blockIdx.y * kSg + ty, ak = k0 + tx;
      as[ty][tx] = (am < M && ak < K) ? (trans_a ? A[(int64_t)ak * lda + am] : A[(int64_t)am * lda + ak]) : 0.f;
    }
    {  // op(B)(k0 + ty, blockIdx.x * kSg + tx)
      const int bk = k0 + ty, bn = blockIdx.x * kSg + tx;
      bs[ty][tx] = (bk < K && bn < N) ? (trans_b ? B[(int64_t)bn * ldb + bk] : B[(int64_t)bk * ldb + bn]) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < kSg; kk++) acc += as[ty][kk] * bs[kk][tx];
    __syncthreads();
  }
  if (m < M && n < N) {
    float* c = C + (int64_t)m * ldc + n;
    *c = beta == 0.f ? alpha * acc : alpha * acc + beta * *c;
  }
}

// ================================================================== launchers
Status check_gemm(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
  if (M < 0 || N < 0 || K < 0) return Status::error("gemm: negative dimension");
  const int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda < std::max(1, a_cols) || ldb < std::max(1, b_cols) || ldc < std::max(1, N))
    return Status::error("gemm: leading dimension smaller than the row length");
  return Status::success();
}
}  // namespace

bool cublas_available() { return cublas().loaded; }

Status gemm_f32_fallback(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                         float beta, float* C, int ldc, cudaStream_t s) {
  STATUS_TRY(check_gemm(trans_a, trans_b, M, N, K, lda, ldb, ldc));
  if (M == 0 || N == 0) return Status::success();
  dim3 grid(ceil_div(N, kSg), ceil_div(M, kSg));
  if (grid.y > 65535) return Status::error("gemm (fallback): M = " + std::to_string(M) + " is too large for the fallback kernel's grid");
  sgemm_kernel<<<grid, dim3(kSg, kSg), 0, s>>>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                float* C, int ldc, GemmCompute compute, cudaStream_t s) {
  Cublas& lib = cublas();
  if (!lib.loaded) return gemm_f32_fallback(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s);
  STATUS_TRY(check_gemm(trans_a, trans_b, M, N, K, lda, ldb, ldc));
  if (M == 0 || N == 0) return Status::success();
  // Row-major C (M, N) is column-major C^T (N, M) = op(B)^T op(A)^T. A row-major matrix stored
  // (r, c) with leading dimension ld is the column-major (c, r) matrix with the same ld, i.e.
  // its transpose: so cuBLAS gets B first with op N when B is not transposed, and A second.
  const int compute_type = compute == GemmCompute::bf16 ? kCompute32FFast16BF : compute == GemmCompute::f16 ? kCompute32FFast16F : kCompute32F;
  if (lib.set_stream(lib.handle, s) != 0) return Status::error("cublasSetStream failed");
  const int rc = lib.gemm_ex(lib.handle, trans_b ? kOpT : kOpN, trans_a ? kOpT : kOpN, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda,
                             &beta, C, CUDA_R_32F, ldc, compute_type, kGemmDefault);
  if (rc != 0) return Status::error("cublasGemmEx failed with status " + std::to_string(rc));
  return Status::success();
}

Status matmul_forward_bf16_wmma(float* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N, int C, int OC, cudaStream_t s) {
  if (N <= 0 || OC <= 0) return Status::success();
  dim3 grid(ceil_div(OC, kTile), ceil_div(N, kTile));
  matmul_wmma_kernel<<<grid, 128, 0, s>>>(out, inp, weight, N, C, OC);
  CUDA_TRY_LAUNCH();
  return Status::success();
}

Status matmul_forward_bf16(float* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N, int C, int OC, cudaStream_t s) {
  Cublas& lib = cublas();
  if (!lib.loaded) return matmul_forward_bf16_wmma(out, inp, weight, N, C, OC, s);
  // Row-major out (N, OC) is column-major out^T (OC, N) = weight (OC, C) . inp^T (C, N):
  // in cuBLAS's column-major terms, A = weight stored (C, OC) col-major -> op T; B = inp as (C, N) -> op N.
  const float alpha = 1.f, beta = 0.f;
  if (lib.set_stream(lib.handle, s) != 0) return Status::error("cublasSetStream failed");
  const int rc = lib.gemm_ex(lib.handle, kOpT, kOpN, OC, N, C, &alpha, weight, CUDA_R_16BF, C, inp, CUDA_R_16BF, C, &beta,
                             out, CUDA_R_32F, OC, kCompute32F, kGemmDefault);
  if (rc != 0) return Status::error("cublasGemmEx failed with status " + std::to_string(rc));
  return Status::success();
}

}  // namespace cuda_backend

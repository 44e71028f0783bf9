// Matrix products of the CUDA backend and device discovery.
// cuBLAS is loaded at run time (dlopen) so the module builds and loads without it: from the
// loader's path, else from the CUDA toolkit's lib folders or pip's nvidia/cublas/lib (cublas_dirs).
// When it is missing, the backend's products (gemm_f32, fp32 memory) run on a plain tiled fp32
// SGEMM (correctness over speed; bf16/fp16 compute requests are then computed in fp32), and
// matmul_forward_bf16 (bf16 inputs; tests and bench) on our tensor-core wmma kernel.
// gemm_path() says which is in use (info, the bench, the backend's one-time warning).
#include <dlfcn.h>
#include <glob.h>
#include <mma.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "attention_tiles.h"
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
  info.name = prop.name;
  info.sm_major = prop.major;
  info.sm_minor = prop.minor;
  info.memory_bytes = prop.totalGlobalMem;
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) != cudaSuccess) {
    cudaGetLastError();
    optin = (int)prop.sharedMemPerBlock;
  }
  info.smem_optin_bytes = (size_t)optin;
  info.attention = attention_support(info.smem_optin_bytes);
  info.available = prop.major >= 8 && !info.attention.empty();
  if (prop.major < 8) info.reason = "device is older than sm_80 (Ampere), which this build targets";
  else if (info.attention.empty())
    info.reason = "the attention kernels do not fit this device's " + std::to_string(optin) + " bytes of shared memory per block (" +
                  attention_tiles::plan(64, info.smem_optin_bytes).reason + ")";
  return info;
}

Status device_smem_limit(size_t* bytes) {
  int dev = 0, optin = 0;
  CUDA_TRY(cudaGetDevice(&dev));
  CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  *bytes = (size_t)optin;
  return Status::success();
}

std::string attention_support(size_t smem_optin_bytes) {
  const attention_tiles::Plan p64 = attention_tiles::plan(64, smem_optin_bytes), p128 = attention_tiles::plan(128, smem_optin_bytes);
  if (!p64.kv) return "";
  if (!p128.kv) return "head_dim <= 64 only (" + p128.reason + ")";
  return p128.kv == attention_tiles::kTile ? "head_dim 64 and 128" : "head_dim 64 and 128 (128 with key tiles of " + std::to_string(p128.kv) + ")";
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
  std::string path;      // the library loaded (as dlopen was given it)
  std::string searched;  // where it was looked for, when not found
  cublasHandle handle = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
};

// Where cuBLAS may live besides the loader's own path (LD_LIBRARY_PATH, ldconfig): the CUDA
// toolkit ($CUDA_HOME, $CUDA_PATH, the folder of the nvcc on PATH, /usr/local/cuda) and pip's
// nvidia-cublas wheels (nvidia/cublas/lib in a site-packages or dist-packages folder).
std::vector<std::string> cublas_dirs() {
  std::vector<std::string> dirs;
  auto toolkit = [&](const std::string& root) {
    if (root.empty()) return;
    for (const char* sub : {"/lib64", "/lib", "/targets/x86_64-linux/lib", "/targets/sbsa-linux/lib"}) dirs.push_back(root + sub);
  };
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var)) toolkit(v);
  if (const char* path = std::getenv("PATH")) {  // nvcc's toolkit: <root>/bin/nvcc (through symlinks)
    std::string p = path;
    for (size_t at = 0; at <= p.size();) {
      const size_t end = std::min(p.find(':', at), p.size());
      const std::string nvcc = p.substr(at, end - at) + "/nvcc";
      if (char* real = realpath(nvcc.c_str(), nullptr)) {
        std::string r = real;
        std::free(real);
        const size_t bin = r.rfind("/bin/nvcc");
        if (bin != std::string::npos) toolkit(r.substr(0, bin));
        break;
      }
      at = end + 1;
    }
  }
  toolkit("/usr/local/cuda");
  std::vector<std::string> patterns = {"/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                                       "/usr/local/lib/python3*/dist-packages", "/opt/conda/lib/python3*/site-packages"};
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = std::getenv(var)) patterns.push_back(std::string(v) + "/lib/python3*/site-packages");
  if (const char* home = std::getenv("HOME")) patterns.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  for (const std::string& pat : patterns) {
    glob_t g{};
    if (glob((pat + "/nvidia/cublas/lib").c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; i++) dirs.push_back(g.gl_pathv[i]);
    globfree(&g);
  }
  return dirs;
}

Cublas& cublas() {
  static Cublas lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    void* so = nullptr;
    for (const char* n : names)
      if ((so = dlopen(n, RTLD_NOW | RTLD_LOCAL))) { lib.path = n; break; }
    if (!so) {
      lib.searched = "the loader's path";
      for (const std::string& dir : cublas_dirs()) {
        lib.searched += ", " + dir;
        for (const char* n : names) {
          const std::string full = dir + "/" + n;
          if (access(full.c_str(), R_OK) != 0) continue;
          // cuBLAS needs cublasLt of the same folder (pip wheels are not on the loader's path).
          const std::string lt = dir + "/libcublasLt" + std::string(n).substr(std::strlen("libcublas"));
          if (access(lt.c_str(), R_OK) == 0) dlopen(lt.c_str(), RTLD_NOW | RTLD_GLOBAL);
          if ((so = dlopen(full.c_str(), RTLD_NOW | RTLD_LOCAL))) { lib.path = full; break; }
        }
        if (so) break;
      }
    }
    if (!so) return;
    auto create = (CreateFn)dlsym(so, "cublasCreate_v2");
    lib.set_stream = (SetStreamFn)dlsym(so, "cublasSetStream_v2");
    lib.gemm_ex = (GemmExFn)dlsym(so, "cublasGemmEx");
    if (!create || !lib.set_stream || !lib.gemm_ex) { lib.searched = lib.path + " lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx"; return; }
    if (create(&lib.handle) != 0) { lib.searched = lib.path + " loaded but cublasCreate failed"; return; }
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

std::string gemm_path() {
  const Cublas& lib = cublas();
  if (lib.loaded) return "cublas (" + lib.path + ")";
  return "fallback: naive fp32 SGEMM, bf16/fp16 requests computed in fp32 (cuBLAS not found; searched " + lib.searched + ")";
}

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

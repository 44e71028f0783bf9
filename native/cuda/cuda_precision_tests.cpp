// The compute precision switched between calls on one CUDA backend (set_precision), as a pipeline
// does at each stage start:
// - products: after each switch matmul_forward computes at the new precision. The reference is
//   float64 over the inputs rounded to that precision (bf16 / fp16) or exact (fp32); tolerance
//   1e-5 relative to the reference's max |value| (fp32 accumulation in another order). The same
//   output also differs from the exact-input product by more than 1e-4 at bf16 / fp16 (input
//   rounding of 2^-9 / 2^-12 shows at that size), and coming back to fp32 gives the first fp32
//   output bit for bit.
// - a model: one model switches fp32 -> bf16 -> fp32 step by step while another stays fp32 (each
//   on its own backend, same init and tokens). Step 1 (both fp32) is bit-identical. Step 2 (bf16)
//   differs from the fp32 step by bf16 rounding: loss within 1e-2 relative, grad_norm within
//   5e-2, and not equal; its update is fp32 (master weights): every weight the fp32 step moved
//   moves (>= 99% of them; updates of lr = 1e-5 are below bf16's resolution of the norm weights
//   at 1), by the fp32 step's amount within 2.5 lr. Step 3 (fp32 again) is bit-identical to a
//   step on a fresh fp32 backend from the same weights and optimiser state.
// - fp16 between bf16 steps: only the fp16 step scales its loss, and the scale is kept.
// Without cuBLAS the products run in fp32 at every precision (gemm_path): the tests then check
// that nothing changes. Part of the cuda_tests binary: skipped without a device (cuda_tests.cpp).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "backend_cuda.h"
#include "check.h"
#include "cuda_test_util.h"
#include "model.h"
#include "model_shapes.h"
#include "ops_cuda.h"

namespace {
using cuda_test::bf16_round;
using cuda_test::near;
using cuda_test::near_scalar;
using cuda_test::randn;
using cuda_test::tokens_for;
using engine::Model;
using engine::Precision;

float fp16_round(float x) { return __half2float(__float2half(x)); }

std::vector<float> rounded_to(Precision p, std::vector<float> v) {
  for (auto& x : v) x = p == Precision::bf16 ? bf16_round(x) : p == Precision::fp16 ? fp16_round(x) : x;
  return v;
}

// out (N, OC) = x (N, C) @ w (OC, C)^T in float64, rounded to float at the end.
std::vector<float> product(const std::vector<float>& x, const std::vector<float>& w, int N, int C, int OC) {
  std::vector<float> out((size_t)N * OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += (double)x[(size_t)n * C + c] * w[(size_t)o * C + c];
      out[(size_t)n * OC + o] = (float)s;
    }
  return out;
}

// max |a - b| / max |b|.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, mag = 1e-30;
  for (size_t i = 0; i < b.size(); i++) {
    err = std::max(err, std::fabs((double)a[i] - b[i]));
    mag = std::max(mag, std::fabs((double)b[i]));
  }
  return err / mag;
}

std::shared_ptr<engine::Backend> own_backend(Precision p) { return std::shared_ptr<engine::Backend>(cuda_backend::make_cuda_backend(p)); }

void expect_same_step(const engine::StepResult& got, const engine::StepResult& want, const std::string& what) {
  EXPECT_MSG(got.loss == want.loss && got.grad_norm == want.grad_norm,
             what << ": loss " << got.loss << " vs " << want.loss << ", grad_norm " << got.grad_norm << " vs " << want.grad_norm);
}
void expect_same_weights(Model& a, Model& b, const std::string& what) {
  const auto& pa = a.params();
  const auto& pb = b.params();
  for (size_t i = 0; i < pa.size(); i++) EXPECT_MSG(pa[i].data == pb[i].data, what << ": " << pa[i].name << " differs");
}
}  // namespace

TEST(cuda_precision_switch_changes_the_products_and_back) {
  const int N = 64, C = 256, OC = 96;
  const auto x = randn((size_t)N * C, 41), w = randn((size_t)OC * C, 42, 0.05f);
  const auto exact = product(x, w, N, C, OC);
  auto be = own_backend(Precision::fp32);
  const int64_t ny = (int64_t)N * OC;
  float *X = be->alloc((int64_t)x.size()), *W = be->alloc((int64_t)w.size()), *Y = be->alloc(ny);
  be->upload(X, x.data(), (int64_t)(x.size() * sizeof(float)));
  be->upload(W, w.data(), (int64_t)(w.size() * sizeof(float)));
  auto run = [&](Precision p) {
    be->set_precision(p);
    EXPECT(be->precision() == p);
    be->matmul_forward(Y, X, W, N, C, OC);
    std::vector<float> y(ny);
    be->download(y.data(), Y, ny * (int64_t)sizeof(float));
    return y;
  };
  const auto first = run(Precision::fp32);
  near(first, exact, 1e-5, "fp32 product");
  for (Precision p : {Precision::bf16, Precision::fp16}) {
    const std::string name = engine::precision_name(p);
    const auto y = run(p);
    if (cuda_backend::cublas_available()) {
      near(y, product(rounded_to(p, x), rounded_to(p, w), N, C, OC), 1e-5, name + " product vs the product of " + name + "-rounded inputs");
      EXPECT_MSG(relative_error(y, exact) > 1e-4, name << " product within " << relative_error(y, exact) << " of the exact one: not computed at " << name);
    } else {
      EXPECT_MSG(y == first, name << " without cuBLAS: the fp32 fallback should give the fp32 product");
    }
    EXPECT_MSG(run(Precision::fp32) == first, "fp32 after " << name << ": not the first fp32 product bit for bit");
  }
  for (float* p : {X, W, Y}) be->release(p);
}

TEST(cuda_precision_switch_between_steps_keeps_fp32_masters) {
  const engine::ModelConfig config = cuda_test::small_config("llama");
  const int B = 2, T = 256;
  auto switched_be = own_backend(Precision::fp32);
  Model a(config, switched_be), b(config, own_backend(Precision::fp32));
  a.init_random(1);
  b.init_random(1);
  engine::StepOptions opt;
  opt.lr = 1e-5f;
  const auto t1 = tokens_for(B, T, 512, 11), t2 = tokens_for(B, T, 512, 12), t3 = tokens_for(B, T, 512, 13);

  // Step 1: both fp32, bit for bit (the CUDA step is deterministic).
  expect_same_step(a.train_step(t1.data(), B, T, opt), b.train_step(t1.data(), B, T, opt), "step 1 (fp32)");
  expect_same_weights(a, b, "after step 1");
  std::vector<std::vector<float>> before;
  for (const auto& p : a.params()) before.push_back(p.data);

  // Step 2: a at bf16.
  a.set_precision(Precision::bf16);
  EXPECT(a.backend().precision() == Precision::bf16);
  const auto ra = a.train_step(t2.data(), B, T, opt), rb = b.train_step(t2.data(), B, T, opt);
  EXPECT_MSG(ra.loss_scale == 1 && !ra.skipped, "bf16 scales no loss (scale " << ra.loss_scale << ")");
  near_scalar(ra.loss, rb.loss, 1e-2, 0, "step 2 (bf16) loss vs fp32");
  near_scalar(ra.grad_norm, rb.grad_norm, 5e-2, 0, "step 2 (bf16) grad_norm vs fp32");
  if (cuda_backend::cublas_available())
    EXPECT_MSG(ra.loss != rb.loss, "step 2: the bf16 loss equals the fp32 one (" << ra.loss << "): the switch did not reach the products");
  else
    expect_same_step(ra, rb, "step 2 without cuBLAS (fp32 products at every precision)");
  const auto& pa = a.params();
  const auto& pb = b.params();
  for (size_t i = 0; i < pa.size(); i++) {
    size_t moved_b = 0, moved_both = 0;
    double worst = 0;
    for (size_t j = 0; j < pa[i].data.size(); j++) {
      const double da = (double)pa[i].data[j] - before[i][j], db = (double)pb[i].data[j] - before[i][j];
      worst = std::max(worst, std::fabs(da - db));
      if (db != 0) {
        moved_b++;
        moved_both += da != 0;
      }
    }
    EXPECT_MSG(worst <= 2.5 * opt.lr, pa[i].name << ": the bf16 step's update differs from the fp32 one by " << worst << " (> 2.5 lr)");
    EXPECT_MSG(moved_both >= moved_b * 0.99, pa[i].name << ": " << moved_b - moved_both << " of " << moved_b
                                                        << " weights the fp32 step moved stayed put: not fp32 master weights");
  }

  // Step 3: a back at fp32, against a fresh fp32 backend holding a's whole state.
  a.set_precision(Precision::fp32);
  Model c(config, own_backend(Precision::fp32));
  c.params() = a.params();  // weights, moments and step counts
  expect_same_step(a.train_step(t3.data(), B, T, opt), c.train_step(t3.data(), B, T, opt), "step 3 (fp32 again) vs a fresh fp32 backend");
  expect_same_weights(a, c, "after step 3");
}

// bf16 -> fp16 -> bf16 on one model: only the fp16 step scales its loss (at the initial 65536; an
// overflow there skips it and halves the scale), and the scale is kept for a later fp16 stage.
TEST(cuda_precision_switch_to_fp16_scales_the_loss_there_only) {
  Model m(cuda_test::small_config("qwen3"), own_backend(Precision::bf16));
  m.init_random(2);
  engine::StepOptions opt;
  const auto t = tokens_for(2, 128, 512, 21);
  EXPECT(m.train_step(t.data(), 2, 128, opt).loss_scale == 1);
  m.set_precision(Precision::fp16);
  const auto r = m.train_step(t.data(), 2, 128, opt);
  EXPECT_MSG(r.loss_scale == 65536 && std::isfinite(r.loss), "fp16 step: scale " << r.loss_scale << ", loss " << r.loss);
  const double kept = r.skipped ? 32768 : 65536;
  m.set_precision(Precision::bf16);
  const auto back = m.train_step(t.data(), 2, 128, opt);
  EXPECT_MSG(back.loss_scale == 1 && !back.skipped, "bf16 after fp16: scale " << back.loss_scale);
  EXPECT_MSG(m.loss_scale() == kept, "the fp16 loss scale " << m.loss_scale() << " was not kept (" << kept << ")");
}

// fp8 (e4m3, one scale per row) on the GPU against host references: quantisation bit for bit against
// engine::float_to_e4m3 (itself tested in tests/engine), the fused layer norm and GELU hand-overs
// within e4m3's rounding, the f8 products against double-precision sums of the dequantised operands,
// and the whole ESM-2 in fp8 against fp32 (SPEC §9: cosine >= 0.995).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/ops.h"
#include "engine/tensor.h"
#include "models/esm2.h"
#include "test_util.h"
#include "tests/engine_cuda/cuda_test_util.h"
#include "tokenize/esm_alphabet.h"

namespace vnp::engine::test {
namespace {

const bool kPoisoned = (setenv("VIRNUCPRO_CUDA_POISON", "1", 1), true);

// The rule of ops::cast to f8, on the host.
struct Quantised {
  std::vector<std::uint8_t> codes;
  std::vector<float> scale;
  std::vector<float> values;  // codes · scale
};

Quantised quantise_rows(const std::vector<float>& x, std::int64_t rows, std::int64_t cols) {
  Quantised q;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * cols;
    float amax = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(row[c]));
    const float inv = amax > 0.0f ? 448.0f / amax : 1.0f, scale = amax > 0.0f ? amax / 448.0f : 1.0f;
    q.scale.push_back(scale);
    for (std::int64_t c = 0; c < cols; ++c) {
      q.codes.push_back(float_to_e4m3(row[c] * inv));
      q.values.push_back(e4m3_to_float(q.codes.back()) * scale);
    }
  }
  return q;
}

// x̂·Ŵᵀ (+ bias) summed in double over the dequantised operands: x [n, in], W [out, in] -> [n, out].
std::vector<double> dequantised_product(const Quantised& x, const Quantised& w, std::int64_t n,
                                        std::int64_t in, std::int64_t out,
                                        const std::vector<float>& bias = {}) {
  std::vector<double> y(static_cast<std::size_t>(n * out));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double sum = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
      for (std::int64_t c = 0; c < in; ++c)
        sum += static_cast<double>(x.values[static_cast<std::size_t>(i * in + c)]) *
               w.values[static_cast<std::size_t>(o * in + c)];
      y[static_cast<std::size_t>(i * out + o)] = sum;
    }
  return y;
}

std::vector<float> to_float(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

std::vector<std::uint8_t> codes_of(const Tensor& f8) {
  Tensor host = f8.to(Device::cpu());
  std::vector<std::uint8_t> out(host.nbytes());
  std::memcpy(out.data(), host.raw(), out.size());
  return out;
}

double gelu(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

// Every element of a dequantised f8 row within e4m3's rounding of the exact value: half an ulp
// (2^-4 relative) for normals, half a subnormal step (2^-10 · scale), plus `slack` · max|row| for the
// rounding of the inputs that the kernels see.
void expect_within_e4m3(const Tensor& got_f8, const std::vector<double>& exact, std::int64_t cols,
                        double slack) {
  const auto got = got_f8.to_floats();
  const auto scale = got_f8.row_scale().to_floats();
  ASSERT_EQ(got.size(), exact.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::size_t row = i / static_cast<std::size_t>(cols);
    const double bound = 0.0625 * std::fabs(exact[i]) + 0x1p-10 * scale[row] + slack * 448.0 * scale[row];
    ASSERT_LE(std::fabs(got[i] - exact[i]), bound) << "element " << i << " (row " << row << ")";
  }
}

TEST(CudaFp8, CastQuantisesEachRowBitForBitLikeTheHost) {
  VNP_REQUIRE_GPU();
  ASSERT_TRUE(kPoisoned);
  // Register path (2560 f32, 10240 f16), the any-size path (37, 20000 f16), a zero row, mixed magnitudes.
  const std::pair<std::int64_t, DType> cases[] = {
      {2560, DType::kF32}, {10240, DType::kF16}, {37, DType::kF32}, {20000, DType::kF16}, {64, DType::kBF16}};
  for (auto [cols, dt] : cases) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << cols << " " << dtype_name(dt) << " seed " << seed);
    const std::int64_t rows = 5;
    auto values = random_floats(static_cast<std::size_t>(rows * cols), seed);
    for (std::int64_t c = 0; c < cols; ++c)
      values[static_cast<std::size_t>(cols + c)] *= 1e-3f;  // row 1 small
    for (std::int64_t c = 0; c < cols; ++c)
      values[static_cast<std::size_t>(3 * cols + c)] = 0.0f;  // row 3 zero
    // The host quantises the values the GPU sees: rounded to dt first.
    Tensor input = ops::cast(Tensor::from_floats(values, {rows, cols}).to(gpu()), dt);
    const Quantised want = quantise_rows(input.to_floats(), rows, cols);
    Tensor got = ops::cast(input, DType::kF8E4M3);
    ASSERT_EQ(got.dtype(), DType::kF8E4M3);
    ASSERT_TRUE(got.row_scale().defined());
    EXPECT_EQ(got.row_scale().to_floats(), want.scale);
    EXPECT_TRUE(codes_of(got) == want.codes);
    EXPECT_EQ(got.to_floats(), want.values);  // dequantised through the row scales
    EXPECT_EQ(got.rows(2, 4).to_floats(),
              std::vector<float>(want.values.begin() + 2 * cols, want.values.begin() + 4 * cols));
  }
}

TEST(CudaFp8, LayerNormWritesQuantisedRows) {
  VNP_REQUIRE_GPU();
  for (std::int64_t cols : {2560, 3001, 64}) {
    for (DType dt : {DType::kF16, DType::kF32}) {
      const auto seed = fresh_seed();
      SCOPED_TRACE(::testing::Message() << cols << " " << dtype_name(dt) << " seed " << seed);
      const std::int64_t rows = 9;
      Tensor x = ops::cast(random_tensor({rows, cols}, seed).to(gpu()), dt);
      const auto xs = x.to_floats(), g = random_floats(static_cast<std::size_t>(cols), seed + 1),
                 b = random_floats(static_cast<std::size_t>(cols), seed + 2);
      std::vector<double> exact;
      for (std::int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (std::int64_t c = 0; c < cols; ++c) mean += xs[static_cast<std::size_t>(r * cols + c)];
        mean /= static_cast<double>(cols);
        for (std::int64_t c = 0; c < cols; ++c) {
          const double d = xs[static_cast<std::size_t>(r * cols + c)] - mean;
          var += d * d;
        }
        const double inv_std = 1.0 / std::sqrt(var / static_cast<double>(cols) + 1e-5);
        for (std::int64_t c = 0; c < cols; ++c)
          exact.push_back((xs[static_cast<std::size_t>(r * cols + c)] - mean) * inv_std * g[c] + b[c]);
      }
      Tensor got = ops::layer_norm(x, Tensor::from_floats(g, {cols}).to(gpu()),
                                   Tensor::from_floats(b, {cols}).to(gpu()), 1e-5f, DType::kF8E4M3);
      ASSERT_EQ(got.dtype(), DType::kF8E4M3);
      expect_within_e4m3(got, exact, cols, 1e-5);
    }
  }
}

// x·Wᵀ + b with f8 operands: the GEMM applies both row scales (per token, per output feature).
TEST(CudaFp8, ProductsMatchDequantisedReference) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  const std::int64_t n = 200, in = 512, out = 384;
  auto xv = random_floats(static_cast<std::size_t>(n * in), seed);
  auto wv = random_floats(static_cast<std::size_t>(out * in), seed + 1, 0.05f);
  // Rows of very different size, so that a scale applied to the wrong row shows.
  for (std::int64_t r = 0; r < n; r += 7)
    for (std::int64_t c = 0; c < in; ++c) xv[static_cast<std::size_t>(r * in + c)] *= 100.0f;
  for (std::int64_t r = 0; r < out; r += 5)
    for (std::int64_t c = 0; c < in; ++c) wv[static_cast<std::size_t>(r * in + c)] *= 0.01f;
  const Quantised xq = quantise_rows(xv, n, in), wq = quantise_rows(wv, out, in);
  Tensor bias = ops::cast(random_tensor({out}, seed + 2).to(gpu()), DType::kF16);
  const auto bv = bias.to_floats();
  const std::vector<double> exact = dequantised_product(xq, wq, n, in, out, bv);
  const std::vector<float> exact_f = to_float(exact);
  const Tensor want = Tensor::from_floats(exact_f, {n, out});
  Tensor gx = ops::cast(Tensor::from_floats(xv, {n, in}).to(gpu()), DType::kF8E4M3);
  Tensor gw = ops::cast(Tensor::from_floats(wv, {out, in}).to(gpu()), DType::kF8E4M3);

  Tensor y = ops::linear(gx, gw, bias);
  EXPECT_EQ(y.dtype(), DType::kF16);
  EXPECT_LT(relative_l2(y, want), 1e-3);
  // Row by row too: the small rows must not hide behind the large ones.
  for (std::int64_t i = 0; i < n; i += 7)
    EXPECT_LT(relative_l2(y.rows(i + 1, i + 2).to(Device::cpu()), want.rows(i + 1, i + 2)), 2e-3)
        << "row " << i + 1;

  // An f16 input is quantised on the way in: the same bytes as quantising it first.
  Tensor x16 = ops::cast(Tensor::from_floats(xv, {n, in}).to(gpu()), DType::kF16);
  EXPECT_EQ(ops::linear(x16, gw, bias).to_floats(),
            ops::linear(ops::cast(x16, DType::kF8E4M3), gw, bias).to_floats());

  // Residual: out += x·Wᵀ + b, out in f16.
  Tensor residual = ops::cast(random_tensor({n, out}, seed + 3).to(gpu()), DType::kF16);
  const auto before = residual.to_floats();
  ops::linear_accumulate_(residual, gx, gw, bias);
  std::vector<float> want_sum(exact_f.size());
  for (std::size_t i = 0; i < want_sum.size(); ++i) want_sum[i] = before[i] + exact_f[i];
  EXPECT_LT(relative_l2(residual, Tensor::from_floats(want_sum, {n, out})), 1e-3);

  // GELU hand-over: gelu(x·Wᵀ + b) comes out quantised per row for the next f8 product.
  Tensor h = ops::linear_gelu(gx, gw, bias);
  ASSERT_EQ(h.dtype(), DType::kF8E4M3);
  std::vector<double> exact_gelu(exact.size());
  for (std::size_t i = 0; i < exact.size(); ++i) exact_gelu[i] = gelu(exact[i]);
  expect_within_e4m3(h, exact_gelu, out, 2e-3);  // the pre-activation passes through f16
}

nlohmann::json reference(const std::string& fixture) {
  std::ifstream in(vnp::test::data_path(fixture + "/reference.json"));
  return nlohmann::json::parse(in);
}

// --precision fp8 through the same model code: per-embedding cosine to fp32 >= 0.995 (SPEC §9).
class CudaFp8Esm2 : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaFp8Esm2, CloseToFp32) {
  VNP_REQUIRE_GPU();
  const std::string fixture = GetParam();
  tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> tokens;
  const auto ref = reference(fixture);  // a named object: ranging over a temporary's member dangles
  for (const auto& s : ref["sequences"]) tokens.push_back(alphabet.encode(s["protein"].get<std::string>()));
  models::Esm2 model = models::Esm2::load(vnp::test::data_path(fixture).string(), gpu());
  ASSERT_GE(tokens.size(), 5u);
  const PackedBatch batch = PackedBatch::pack(tokens, gpu());
  Tensor fp32 = model.embed(batch);
  model.set_compute_dtype(DType::kF8E4M3);
  Tensor f8 = model.embed(batch);
  EXPECT_EQ(f8.dtype(), DType::kF32);
  const double cosine = min_row_cosine(f8, fp32);
  EXPECT_GE(cosine, 0.995);
  std::cout << fixture << ": fp8 vs fp32 min cosine " << cosine << "\n";
  model.set_v1_attention(true);
  EXPECT_GE(min_row_cosine(model.embed(batch), fp32), 0.995);
}

// small64 (hidden 256, FFN 1024) before tiny (hidden 64, FFN 256).
INSTANTIATE_TEST_SUITE_P(Fixtures, CudaFp8Esm2, ::testing::Values("esm2_small64", "esm2_tiny"));

// f8 products at the smallest widths a model may have (64 features), one token to many.
TEST(CudaFp8, SmallProducts) {
  VNP_REQUIRE_GPU();
  for (std::int64_t n : {1, 37, 300})
    for (auto [in, out] : {std::pair<std::int64_t, std::int64_t>{64, 64}, {64, 256}, {256, 64}}) {
      const auto seed = fresh_seed();
      SCOPED_TRACE(::testing::Message() << n << "x" << in << "->" << out << " seed " << seed);
      const auto xv = random_floats(static_cast<std::size_t>(n * in), seed);
      const auto wv = random_floats(static_cast<std::size_t>(out * in), seed + 1, 0.1f);
      const Quantised xq = quantise_rows(xv, n, in), wq = quantise_rows(wv, out, in);
      const std::vector<float> want = to_float(dequantised_product(xq, wq, n, in, out));
      Tensor y = ops::linear(ops::cast(Tensor::from_floats(xv, {n, in}).to(gpu()), DType::kF8E4M3),
                             ops::cast(Tensor::from_floats(wv, {out, in}).to(gpu()), DType::kF8E4M3));
      EXPECT_LT(relative_l2(y, Tensor::from_floats(want, {n, out})), 1e-3);
    }
}

}  // namespace
}  // namespace vnp::engine::test

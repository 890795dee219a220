// fp8 (e4m3, one scale per row) on the GPU against host references: quantisation bit for bit against
// engine::float_to_e4m3 (itself tested in tests/engine), the fused layer norm and GELU hand-overs
// within e4m3's rounding, the f8 products against double-precision sums of the dequantised operands,
// and the whole ESM-2 in fp8 against fp32 (SPEC §9: cosine >= 0.995). The same for block scales
// (cuda::Fp8Scales::kBlock: 1×128 runs for activations, 128×128 tiles for weights; CudaFp8Blocks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/cuda/kernels.h"
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

// ---------------------------------------------------------------------------------------------
// Block scales

using Scaling = Tensor::F8Scaling;

// Block scales on GPU 0 for the life of the object (tests in one process share the backend).
struct BlockScales {
  BlockScales() { cuda::set_fp8_scales(0, cuda::Fp8Scales::kBlock); }
  ~BlockScales() { cuda::set_fp8_scales(0, cuda::Fp8Scales::kRow); }
  BlockScales(const BlockScales&) = delete;
  BlockScales& operator=(const BlockScales&) = delete;
};

// The block rule on the host: the row rule per 1×128 run or 128×128 tile (the last ones partial), the
// scales in the device's layout (Tensor::F8Scaling), padding 1.
Quantised quantise_blocks(const std::vector<float>& x, std::int64_t rows, std::int64_t cols,
                          Scaling scaling) {
  const Shape shape = f8_block_scale_shape(scaling, rows, cols);
  const std::int64_t height = scaling == Scaling::kBlock1x128 ? 1 : kF8Block;
  Quantised q;
  q.codes.resize(x.size());
  q.values.resize(x.size());
  q.scale.assign(static_cast<std::size_t>(shape[0] * shape[1]), 1.0f);
  for (std::int64_t r0 = 0; r0 < rows; r0 += height)
    for (std::int64_t c0 = 0; c0 < cols; c0 += kF8Block) {
      const std::int64_t r1 = std::min(rows, r0 + height), c1 = std::min(cols, c0 + kF8Block);
      float amax = 0.0f;
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t c = c0; c < c1; ++c)
          amax = std::max(amax, std::fabs(x[static_cast<std::size_t>(r * cols + c)]));
      const float inv = amax > 0.0f ? 448.0f / amax : 1.0f, scale = amax > 0.0f ? amax / 448.0f : 1.0f;
      const std::int64_t at = scaling == Scaling::kBlock1x128 ? c0 / kF8Block * rows + r0
                                                              : r0 / kF8Block * shape[1] + c0 / kF8Block;
      q.scale[static_cast<std::size_t>(at)] = scale;
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t c = c0; c < c1; ++c) {
          const auto i = static_cast<std::size_t>(r * cols + c);
          q.codes[i] = float_to_e4m3(x[i] * inv);
          q.values[i] = e4m3_to_float(q.codes[i]) * scale;
        }
    }
  return q;
}

// The scale of every element of an f8 tensor [rows, cols], whatever its scaling.
std::vector<float> element_scales(const Tensor& f8) {
  const std::int64_t rows = f8.dim(0), cols = f8.dim(1);
  const auto scale = f8.row_scale().to_floats();
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t at = f8.f8_scaling() == Scaling::kRow ? r
                              : f8.f8_scaling() == Scaling::kBlock1x128
                                  ? c / kF8Block * rows + r
                                  : r / kF8Block * f8.row_scale().dim(1) + c / kF8Block;
      out[static_cast<std::size_t>(r * cols + c)] = scale[static_cast<std::size_t>(at)];
    }
  return out;
}

// expect_within_e4m3 with each element's own scale.
void expect_within_e4m3_blocks(const Tensor& got_f8, const std::vector<double>& exact, double slack) {
  const auto got = got_f8.to_floats();
  const auto scale = element_scales(got_f8);
  ASSERT_EQ(got.size(), exact.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double bound = 0.0625 * std::fabs(exact[i]) + 0x1p-10 * scale[i] + slack * 448.0 * scale[i];
    ASSERT_LE(std::fabs(got[i] - exact[i]), bound) << "element " << i;
  }
}

// Magnitudes that differ by 128-row tile and by 128-column run, so that a scale read from the wrong
// block (or a transposed layout) shows; two all-zero 1×128 runs (rows 0 and 1, columns 128..255).
std::vector<float> blocky_floats(std::int64_t rows, std::int64_t cols, std::uint32_t seed,
                                 float scale = 1.0f) {
  auto v = random_floats(static_cast<std::size_t>(rows * cols), seed, scale);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t tile = r / kF8Block * 7 + c / kF8Block, run = r * 3 + c / kF8Block;
      const float factor = static_cast<float>(std::pow(4.0, tile % 5 - 2)) * (run % 4 == 1 ? 30.0f : 1.0f);
      v[static_cast<std::size_t>(r * cols + c)] *=
          (r < 2 && c >= kF8Block && c < 2 * kF8Block) ? 0.0f : factor;
    }
  return v;
}

TEST(CudaFp8Blocks, WeightCastQuantisesTilesBitForBitLikeTheHost) {
  VNP_REQUIRE_GPU();
  ASSERT_TRUE(kPoisoned);
  BlockScales blocks;
  // Whole tiles; partial tiles in both directions with a padded scale row (ceil(640/128) = 5 -> 8); bf16.
  const std::tuple<std::int64_t, std::int64_t, DType> cases[] = {
      {256, 2560, DType::kF32}, {300, 640, DType::kF16}, {130, 384, DType::kBF16}};
  for (auto [rows, cols, dt] : cases) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " " << dtype_name(dt) << " seed " << seed);
    auto values = blocky_floats(rows, cols, seed);
    if (rows >= 256 && cols >= 384)  // an all-zero tile (1, 2): scale 1, codes 0
      for (std::int64_t r = 128; r < 256; ++r) std::fill_n(values.begin() + r * cols + 256, 128, 0.0f);
    Tensor input = ops::cast(Tensor::from_floats(values, {rows, cols}).to(gpu()), dt);
    const Quantised want = quantise_blocks(input.to_floats(), rows, cols, Scaling::kBlock128x128);
    Tensor got = ops::cast(input, DType::kF8E4M3);
    ASSERT_EQ(got.f8_scaling(), Scaling::kBlock128x128);
    EXPECT_EQ(got.row_scale().shape(), f8_block_scale_shape(Scaling::kBlock128x128, rows, cols));
    EXPECT_EQ(got.row_scale().to_floats(), want.scale);  // padding included: every scale written
    EXPECT_TRUE(codes_of(got) == want.codes);
    EXPECT_EQ(got.to_floats(), want.values);
    EXPECT_THROW(got.rows(0, 1), std::invalid_argument);  // tiles do not slice by row
  }
  // A width that is not a multiple of 128 keeps one scale per row (handled, not refused).
  const auto odd_values = random_floats(5 * 200, fresh_seed());
  Tensor odd = ops::cast(Tensor::from_floats(odd_values, {5, 200}).to(gpu()), DType::kF8E4M3);
  EXPECT_EQ(odd.f8_scaling(), Scaling::kRow);
  EXPECT_EQ(odd.to_floats(), quantise_rows(odd_values, 5, 200).values);
}

TEST(CudaFp8Blocks, RunQuantisationBitForBitLikeTheHost) {
  VNP_REQUIRE_GPU();
  ASSERT_TRUE(kPoisoned);
  // Whole runs, a partial last run (200, 37: the kernel handles any width), f16 and f32.
  const std::pair<std::int64_t, DType> cases[] = {
      {2560, DType::kF16}, {128, DType::kF32}, {200, DType::kF16}, {37, DType::kF32}, {1000, DType::kBF16}};
  for (auto [cols, dt] : cases) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << cols << " " << dtype_name(dt) << " seed " << seed);
    const std::int64_t rows = 7;
    Tensor input =
        ops::cast(Tensor::from_floats(blocky_floats(rows, cols, seed), {rows, cols}).to(gpu()), dt);
    const Quantised want = quantise_blocks(input.to_floats(), rows, cols, Scaling::kBlock1x128);
    // Outputs from the poisoned arena: an element or scale left unwritten shows.
    Tensor codes = Tensor::empty({rows, cols}, DType::kF8E4M3, gpu());
    Tensor scale = Tensor::empty(f8_block_scale_shape(Scaling::kBlock1x128, rows, cols), DType::kF32, gpu());
    cuda::synchronize(0);  // the kernel runs on the default stream, the backend's inputs on its own
    cuda::kernels::quantize_1x128(input.raw(), dt, rows, cols, false, static_cast<std::uint8_t*>(codes.raw()),
                                  scale.data<float>(), nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    Tensor got = codes.with_block_scale(scale, Scaling::kBlock1x128);
    EXPECT_EQ(scale.to_floats(), want.scale);
    EXPECT_TRUE(codes_of(got) == want.codes);
    EXPECT_EQ(got.to_floats(), want.values);
  }
}

TEST(CudaFp8Blocks, LayerNormWritesQuantisedRuns) {
  VNP_REQUIRE_GPU();
  BlockScales blocks;
  for (std::int64_t cols : {2560, 640, 3001}) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << cols << " seed " << seed);
    const std::int64_t rows = 9;
    Tensor x =
        ops::cast(Tensor::from_floats(blocky_floats(rows, cols, seed), {rows, cols}).to(gpu()), DType::kF16);
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
    // 3001 is not a multiple of 128: one scale per row (the row path, handled).
    EXPECT_EQ(got.f8_scaling(), cols % 128 == 0 ? Scaling::kBlock1x128 : Scaling::kRow);
    expect_within_e4m3_blocks(got, exact, 1e-5);
  }
}

// x·Wᵀ + b with block-scaled operands, cuBLASLt applying the scales: against the double product of the
// host-dequantised operands. Relative L2 < 1e-3 (the f16 output alone rounds at 2^-11 ≈ 4.9e-4 per
// element), and per row < 2e-3. First whole blocks (m = 200, k = 512, n = 384: the layouts alone), then
// the edges: m = 203 (not a multiple of 4, which cuBLASLt's block-scaled kernels need: Gemm runs 200 rows,
// then 3 rows padded to 4), k = 640 (5 runs: a padded weight scale row), n = 320 (a partial tile); m = 3
// (only the padded rows).
TEST(CudaFp8Blocks, ProductsMatchDequantisedReference) {
  VNP_REQUIRE_GPU();
  BlockScales blocks;
  for (auto [n, in, out] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{200, 512, 384},
                            {203, 640, 320},
                            {3, 512, 256}}) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << n << " tokens, " << in << " -> " << out << ", seed " << seed);
    // Scaled so that the products stay well inside f16 (the block factors reach 16 · 30 on both operands).
    const auto xv = blocky_floats(n, in, seed, 0.05f), wv = blocky_floats(out, in, seed + 1, 0.002f);
    Tensor x16 = ops::cast(Tensor::from_floats(xv, {n, in}).to(gpu()), DType::kF16);
    const Quantised xq = quantise_blocks(x16.to_floats(), n, in, Scaling::kBlock1x128),
                    wq = quantise_blocks(wv, out, in, Scaling::kBlock128x128);
    Tensor bias = ops::cast(random_tensor({out}, seed + 2).to(gpu()), DType::kF16);
    const std::vector<double> exact = dequantised_product(xq, wq, n, in, out, bias.to_floats());
    const std::vector<float> exact_f = to_float(exact);
    const Tensor want = Tensor::from_floats(exact_f, {n, out});
    Tensor gw = ops::cast(Tensor::from_floats(wv, {out, in}).to(gpu()), DType::kF8E4M3);
    ASSERT_EQ(gw.f8_scaling(), Scaling::kBlock128x128);

    Tensor y = ops::linear(x16, gw, bias);  // x quantised in 1×128 runs on the way in
    EXPECT_EQ(y.dtype(), DType::kF16);
    EXPECT_LT(relative_l2(y, want), 1e-3);
    for (std::int64_t i = 0; i < n; i += 5)
      EXPECT_LT(relative_l2(y.rows(i, i + 1).to(Device::cpu()), want.rows(i, i + 1)), 2e-3) << "row " << i;
    // Without a bias: the product's own output, no pass of ours.
    const Tensor want_nobias =
        Tensor::from_floats(to_float(dequantised_product(xq, wq, n, in, out)), {n, out});
    EXPECT_LT(relative_l2(ops::linear(x16, gw, Tensor{}), want_nobias), 1e-3);

    // Residual: out += x·Wᵀ + b.
    Tensor residual = ops::cast(random_tensor({n, out}, seed + 3).to(gpu()), DType::kF16);
    const auto before = residual.to_floats();
    ops::linear_accumulate_(residual, x16, gw, bias);
    std::vector<float> want_sum(exact_f.size());
    for (std::size_t i = 0; i < want_sum.size(); ++i) want_sum[i] = before[i] + exact_f[i];
    EXPECT_LT(relative_l2(residual, Tensor::from_floats(want_sum, {n, out})), 1e-3);

    // GELU hand-over: gelu(x·Wᵀ + b) quantised in 1×128 runs (per row for 320, not a multiple of 128).
    Tensor h = ops::linear_gelu(x16, gw, bias);
    ASSERT_EQ(h.dtype(), DType::kF8E4M3);
    EXPECT_EQ(h.f8_scaling(), out % 128 == 0 ? Scaling::kBlock1x128 : Scaling::kRow);
    std::vector<double> exact_gelu(exact.size());
    for (std::size_t i = 0; i < exact.size(); ++i) exact_gelu[i] = gelu(exact[i]);
    expect_within_e4m3_blocks(h, exact_gelu, 2e-3);  // the pre-activation passes through f16
    if (out % 128 == 0) {                            // and the hand-over feeds the next block-scaled product
      Tensor w2 =
          ops::cast(Tensor::from_floats(blocky_floats(256, out, seed + 4, 0.0005f), {256, out}).to(gpu()),
                    DType::kF8E4M3);
      const Quantised hq{codes_of(h), h.row_scale().to_floats(), h.to_floats()};
      const Quantised w2q{codes_of(w2), w2.row_scale().to_floats(), w2.to_floats()};
      const Tensor want2 = Tensor::from_floats(to_float(dequantised_product(hq, w2q, n, out, 256)), {n, 256});
      EXPECT_LT(relative_l2(ops::linear(h, w2, Tensor{}), want2), 1e-3);
    }
  }
}

// Operands quantised under different settings are refused, not multiplied with the wrong scales; widths
// that are not multiples of 128 keep row scales in block mode and give the row path's result.
TEST(CudaFp8Blocks, MixedScalingsRefusedOddWidthsUseRowScales) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  Tensor x = ops::cast(random_tensor({16, 256}, seed).to(gpu()), DType::kF16);
  Tensor w = random_tensor({128, 256}, seed + 1, 0.1f).to(gpu());
  Tensor x_row = ops::cast(x, DType::kF8E4M3), w_row = ops::cast(w, DType::kF8E4M3);
  Tensor odd_x = ops::cast(random_tensor({16, 208}, seed + 2).to(gpu()), DType::kF16);
  Tensor odd_w = random_tensor({64, 208}, seed + 3, 0.1f).to(gpu());
  const auto odd_row = ops::linear(odd_x, ops::cast(odd_w, DType::kF8E4M3)).to_floats();
  BlockScales blocks;
  Tensor w_block = ops::cast(w, DType::kF8E4M3);
  ASSERT_EQ(w_block.f8_scaling(), Scaling::kBlock128x128);
  EXPECT_THROW(ops::linear(x_row, w_block), std::invalid_argument);
  Tensor h = ops::layer_norm(x, Tensor::from_floats(std::vector<float>(256, 1.0f), {256}).to(gpu()),
                             Tensor::zeros({256}, DType::kF32, gpu()), 1e-5f, DType::kF8E4M3);
  ASSERT_EQ(h.f8_scaling(), Scaling::kBlock1x128);
  EXPECT_THROW(ops::linear(h, w_row), std::invalid_argument);
  EXPECT_EQ(ops::linear(odd_x, ops::cast(odd_w, DType::kF8E4M3)).to_floats(), odd_row);
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

// The same with block scales: small64's products are all block-scaled (256 and 1024 are multiples of
// 128); tiny's q/k/v/out-proj/fc1 (64 wide) keep row scales and its fc2 (256) has blocks.
class CudaFp8Esm2Blocks : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaFp8Esm2Blocks, CloseToFp32) {
  VNP_REQUIRE_GPU();
  const std::string fixture = GetParam();
  tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> tokens;
  const auto ref = reference(fixture);
  for (const auto& s : ref["sequences"]) tokens.push_back(alphabet.encode(s["protein"].get<std::string>()));
  models::Esm2 model = models::Esm2::load(vnp::test::data_path(fixture).string(), gpu());
  ASSERT_GE(tokens.size(), 5u);
  const PackedBatch batch = PackedBatch::pack(tokens, gpu());
  Tensor fp32 = model.embed(batch);
  BlockScales blocks;
  model.set_compute_dtype(DType::kF8E4M3);
  const double cosine = min_row_cosine(model.embed(batch), fp32);
  EXPECT_GE(cosine, 0.995);
  std::cout << fixture << ": fp8 (block scales) vs fp32 min cosine " << cosine << "\n";
}

INSTANTIATE_TEST_SUITE_P(BlockFixtures, CudaFp8Esm2Blocks, ::testing::Values("esm2_small64", "esm2_tiny"));

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

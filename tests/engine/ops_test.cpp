// Every op against a naive double-precision reference written out here, on shapes that do not
// divide the kernels' tile sizes; plus bit-identity across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/thread_pool.h"

namespace vnp::engine {
namespace {

using Matrix = std::vector<double>;  // row-major reference values

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

Tensor random_tensor(Shape shape, std::uint32_t seed, float scale = 1.0f) {
  return Tensor::from_floats(random_floats(static_cast<std::size_t>(shape_numel(shape)), seed, scale), shape);
}

Matrix as_double(const Tensor& t) {
  auto f = t.to_floats();
  return Matrix(f.begin(), f.end());
}

// ||got - want|| / ||want|| over the whole tensor.
double relative_l2(const Tensor& got, const Matrix& want) {
  auto g = got.to_floats();
  EXPECT_EQ(g.size(), want.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size() && i < g.size(); ++i) {
    num += (g[i] - want[i]) * (g[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

double max_abs_diff(const Tensor& got, const Matrix& want) {
  auto g = got.to_floats();
  double m = 0;
  for (std::size_t i = 0; i < want.size(); ++i) m = std::max(m, std::abs(g[i] - want[i]));
  return m;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

double gelu_ref(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

Matrix linear_ref(const Matrix& x, const Matrix& w, const Matrix* b, std::int64_t m, std::int64_t n,
                  std::int64_t k) {
  Matrix y(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = b ? (*b)[static_cast<std::size_t>(j)] : 0.0;
      for (std::int64_t p = 0; p < k; ++p)
        s += x[static_cast<std::size_t>(i * k + p)] * w[static_cast<std::size_t>(j * k + p)];
      y[static_cast<std::size_t>(i * n + j)] = s;
    }
  return y;
}

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override { set_num_threads(2); }
  void TearDown() override { set_num_threads(1); }
};

TEST_F(OpsTest, EmbeddingGathersRowsAndRejectsBadIds) {
  Tensor table = random_tensor({5, 3}, 1);
  Tensor out = ops::embedding(table, Tensor::from_ints({4, 0, 4}, {3}));
  auto t = table.to_floats(), o = out.to_floats();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(o[static_cast<std::size_t>(j)], t[static_cast<std::size_t>(12 + j)]);
    EXPECT_EQ(o[static_cast<std::size_t>(3 + j)], t[static_cast<std::size_t>(j)]);
  }
  EXPECT_THROW(ops::embedding(table, Tensor::from_ints({5}, {1})), std::out_of_range);
  EXPECT_THROW(ops::embedding(table, Tensor::from_ints({-1}, {1})), std::out_of_range);
}

TEST_F(OpsTest, LinearMatchesNaiveGemm) {
  // 385 x 1030 crosses the GEMM tile edges in both dimensions; K = 37 is odd.
  const std::int64_t m = 385, n = 1030, k = 37;
  Tensor x = random_tensor({m, k}, 2), w = random_tensor({n, k}, 3), b = random_tensor({n}, 4);
  Matrix xd = as_double(x), wd = as_double(w), bd = as_double(b);
  Matrix want = linear_ref(xd, wd, &bd, m, n, k);
  EXPECT_LT(relative_l2(ops::linear(x, w, b), want), 1e-6);
  EXPECT_LT(relative_l2(ops::linear(x, w), linear_ref(xd, wd, nullptr, m, n, k)), 1e-6);

  Matrix want_gelu = want;
  for (auto& v : want_gelu) v = gelu_ref(v);
  EXPECT_LT(relative_l2(ops::linear_gelu(x, w, b), want_gelu), 1e-6);

  Tensor acc = random_tensor({m, n}, 5);
  Matrix want_acc = as_double(acc);
  for (std::size_t i = 0; i < want_acc.size(); ++i) want_acc[i] += want[i];
  ops::linear_accumulate_(acc, x, w, b);
  EXPECT_LT(relative_l2(acc, want_acc), 1e-6);

  EXPECT_THROW(ops::linear(x, random_tensor({n, k + 1}, 6)), std::invalid_argument);
  EXPECT_THROW(ops::linear(x, w, random_tensor({n + 1}, 6)), std::invalid_argument);
}

// The values a bf16 product sees: x and W rounded to bf16 (round to nearest even).
Matrix rounded_to_bf16(const Tensor& t) {
  Matrix m = as_double(t);
  for (auto& v : m) v = bf16_to_float(float_to_bf16(static_cast<float>(v)));
  return m;
}

bool cpu_has_bf16() {
  return cpu_bf16_support() != CpuBf16::kNone;
}

// bf16 products on the CPU: x f32 (rounded inside the GEMM), W bf16, fp32 accumulation, f32 out. Against
// the exact product of the rounded operands, only the fp32 accumulation's error remains.
TEST_F(OpsTest, LinearBf16IsTheProductOfRoundedOperands) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 or AMX-BF16 on this CPU";
  const std::int64_t m = 130, n = 600, k = 200;  // crosses the 64-row and 256-column tiles
  Tensor x = random_tensor({m, k}, 21), w = random_tensor({n, k}, 22), b = random_tensor({n}, 23);
  Tensor w16 = ops::cast(w, DType::kBF16);
  Matrix xd = rounded_to_bf16(x), wd = rounded_to_bf16(w), bd = as_double(b);
  Matrix want = linear_ref(xd, wd, &bd, m, n, k);
  Tensor got = ops::linear(x, w16, b);
  EXPECT_EQ(got.dtype(), DType::kF32);
  EXPECT_LT(relative_l2(got, want), 1e-6);
  EXPECT_LT(relative_l2(ops::linear(x, ops::pack_linear_weight(w16), b), want), 1e-6);

  Matrix want_gelu = want;
  for (auto& v : want_gelu) v = gelu_ref(v);
  EXPECT_LT(relative_l2(ops::linear_gelu(x, w16, b), want_gelu), 1e-6);
  Tensor acc = random_tensor({m, n}, 24);
  Matrix want_acc = as_double(acc);
  for (std::size_t i = 0; i < want_acc.size(); ++i) want_acc[i] += want[i];
  ops::linear_accumulate_(acc, x, w16, b);
  EXPECT_LT(relative_l2(acc, want_acc), 1e-6);
  // Against the fp32 product: bf16's rounding of the operands, about 2^-9 relative each.
  EXPECT_LT(relative_l2(got, linear_ref(as_double(x), as_double(w), &bd, m, n, k)), 1e-2);
}

// A packed weight gives the same bits as the same weight packed on the fly, for f32 and bf16.
TEST_F(OpsTest, PackedWeightGivesTheSameBits) {
  Tensor x = random_tensor({70, 96}, 31), w = random_tensor({300, 96}, 32), b = random_tensor({300}, 33);
  std::vector<Tensor> weights = {w};
  if (cpu_has_bf16()) weights.push_back(ops::cast(w, DType::kBF16));
  for (const Tensor& weight : weights) {
    Tensor packed = ops::pack_linear_weight(weight);
    EXPECT_TRUE(packed.backend_layout());
    EXPECT_FALSE(packed.rows(0, 10).backend_layout());  // a slice is another tensor
    EXPECT_TRUE(bit_identical(ops::linear_gelu(x, weight, b), ops::linear_gelu(x, packed, b)));
  }
}

// A row's product is the same bits whatever the rows around it (batch size, token budget, its place in
// a tile) and the thread count, for f32 and bf16 weights and every fused epilogue.
TEST_F(OpsTest, LinearRowsBitIdenticalAcrossBatchSizesAndThreads) {
  const std::int64_t m = 200, n = 520, k = 160;
  Tensor x = random_tensor({m, k}, 41), w = random_tensor({n, k}, 42), b = random_tensor({n}, 43);
  Tensor acc = random_tensor({m, n}, 44);
  std::vector<Tensor> weights = {ops::pack_linear_weight(w)};
  if (cpu_has_bf16()) weights.push_back(ops::pack_linear_weight(ops::cast(w, DType::kBF16)));
  for (const Tensor& weight : weights) {
    auto products = [&](std::int64_t begin, std::int64_t end) {
      Tensor xs = x.rows(begin, end).clone(), sum = acc.rows(begin, end).clone();
      ops::linear_accumulate_(sum, xs, weight, b);
      return std::vector<Tensor>{ops::linear(xs, weight, b), ops::linear_gelu(xs, weight, b), sum};
    };
    set_num_threads(1);
    const std::vector<Tensor> whole = products(0, m);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // Slices that start inside a tile, one shorter than a tile, one row alone.
      for (auto [begin, end] :
           {std::pair<std::int64_t, std::int64_t>{0, m}, {3, 131}, {64, 101}, {150, 151}}) {
        const std::vector<Tensor> part = products(begin, end);
        for (std::size_t o = 0; o < part.size(); ++o)
          EXPECT_TRUE(bit_identical(part[o], whole[o].rows(begin, end)))
              << dtype_name(weight.dtype()) << " output " << o << " rows [" << begin << ", " << end << "), "
              << threads << " threads";
      }
    }
  }
}

TEST_F(OpsTest, LayerNormMatchesReference) {
  const std::int64_t rows = 37, cols = 160;
  Tensor x = random_tensor({rows, cols}, 7, 3.0f), g = random_tensor({cols}, 8), b = random_tensor({cols}, 9);
  // An offset row: catastrophic cancellation would show with one-pass fp32 statistics.
  auto xv = x.to_floats();
  for (std::int64_t j = 0; j < cols; ++j) xv[static_cast<std::size_t>(j)] += 1000.0f;
  x = Tensor::from_floats(xv, {rows, cols});
  Matrix xd = as_double(x), gd = as_double(g), bd = as_double(b), want(xd.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::int64_t j = 0; j < cols; ++j) mean += xd[static_cast<std::size_t>(r * cols + j)];
    mean /= cols;
    for (std::int64_t j = 0; j < cols; ++j)
      var += std::pow(xd[static_cast<std::size_t>(r * cols + j)] - mean, 2);
    var /= cols;
    for (std::int64_t j = 0; j < cols; ++j)
      want[static_cast<std::size_t>(r * cols + j)] = (xd[static_cast<std::size_t>(r * cols + j)] - mean) /
                                                         std::sqrt(var + 1e-5) *
                                                         gd[static_cast<std::size_t>(j)] +
                                                     bd[static_cast<std::size_t>(j)];
  }
  EXPECT_LT(relative_l2(ops::layer_norm(x, g, b, 1e-5f), want), 1e-6);
}

TEST_F(OpsTest, GeluIsTheExactErfForm) {
  std::vector<float> xs;
  for (int i = -4000; i <= 4000; ++i) xs.push_back(static_cast<float>(i) * 0.0025f);
  Tensor x = Tensor::from_floats(xs, {static_cast<std::int64_t>(xs.size())});
  Tensor y = ops::gelu(x);
  Matrix want;
  for (float v : xs) want.push_back(gelu_ref(v));
  EXPECT_LT(max_abs_diff(y, want), 2e-6);
  // The tanh approximation differs by up to ~5e-4 around |x| = 2: make sure we are not it.
  double x0 = 2.0;
  double tanh_form = 0.5 * x0 * (1 + std::tanh(std::sqrt(2 / M_PI) * (x0 + 0.044715 * x0 * x0 * x0)));
  EXPECT_GT(std::abs(tanh_form - gelu_ref(x0)), 1e-5);
  EXPECT_NEAR(ops::gelu(Tensor::from_floats({2.0f}, {1})).to_floats()[0], gelu_ref(2.0), 1e-6);
}

TEST_F(OpsTest, GatedGeluActivatesTheFirstHalf) {
  const std::int64_t rows = 5, half = 33;
  Tensor x = random_tensor({rows, 2 * half}, 10, 2.0f);
  Matrix xd = as_double(x), want;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < half; ++j)
      want.push_back(gelu_ref(xd[static_cast<std::size_t>(r * 2 * half + j)]) *
                     xd[static_cast<std::size_t>(r * 2 * half + half + j)]);
  EXPECT_LT(relative_l2(ops::gated_gelu(x), want), 1e-6);
}

TEST_F(OpsTest, AddAndScale) {
  Tensor a = random_tensor({4, 7}, 11), b = random_tensor({4, 7}, 12);
  Matrix want = as_double(a), bd = as_double(b);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = (want[i] + bd[i]) * 0.5;
  Tensor c = ops::add(a, b);
  ops::scale_(c, 0.5f);
  EXPECT_LT(relative_l2(c, want), 1e-7);
  Tensor rows = Tensor::from_floats({1, 0, 2, -1}, {4});
  Tensor d = a.clone();
  ops::scale_rows_(d, rows);
  auto ad = a.to_floats(), dd = d.to_floats();
  EXPECT_EQ(dd[7], 0.0f);
  EXPECT_EQ(dd[14], 2 * ad[14]);
  EXPECT_EQ(dd[27], -ad[27]);
}

// Rotary reference: positions restart per sequence, half-split pairs (j, j + hd/2).
Matrix rotary_ref(const Matrix& x, const std::vector<float>& inv_freq, const std::vector<std::int32_t>& cu,
                  int heads, int hd) {
  Matrix y = x;
  const int width = heads * hd, half = hd / 2;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s)
    for (int t = cu[s]; t < cu[s + 1]; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < half; ++i) {
          double theta = (t - cu[s]) * static_cast<double>(inv_freq[static_cast<std::size_t>(i)]);
          std::size_t lo = static_cast<std::size_t>(t * width + h * hd + i),
                      hi = lo + static_cast<std::size_t>(half);
          y[lo] = x[lo] * std::cos(theta) - x[hi] * std::sin(theta);
          y[hi] = x[hi] * std::cos(theta) + x[lo] * std::sin(theta);
        }
  return y;
}

TEST_F(OpsTest, RotaryRestartsPositionsPerSequence) {
  const int heads = 3, hd = 8;
  PackedBatch batch = PackedBatch::pack(
      {std::vector<std::int32_t>(5, 4), std::vector<std::int32_t>(300, 4), std::vector<std::int32_t>(1, 4)});
  std::vector<float> inv_freq = {1.0f, 0.75f, 0.1f, 0.01f};
  Tensor x = random_tensor({batch.total_tokens(), heads * hd}, 13);
  Matrix want = rotary_ref(as_double(x), inv_freq, batch.host_cu_seqlens, heads, hd);
  ops::rotary_(x, Tensor::from_floats(inv_freq, {4}), batch, heads);
  EXPECT_LT(relative_l2(x, want), 1e-6);
}

// Attention reference in double: per sequence and head, softmax(scale·qkᵀ - slope·|i-j|)·v.
Matrix attention_ref(const Matrix& q, const Matrix& k, const Matrix& v, const std::vector<std::int32_t>& cu,
                     int heads, int hd, double scale, const std::vector<float>& slopes) {
  const int width = heads * hd;
  Matrix out(q.size());
  for (std::size_t s = 0; s + 1 < cu.size(); ++s)
    for (int h = 0; h < heads; ++h)
      for (int i = cu[s]; i < cu[s + 1]; ++i) {
        std::vector<double> p;
        double mx = -1e300;
        for (int j = cu[s]; j < cu[s + 1]; ++j) {
          double d = 0;
          for (int c = 0; c < hd; ++c)
            d += q[static_cast<std::size_t>(i * width + h * hd + c)] *
                 k[static_cast<std::size_t>(j * width + h * hd + c)];
          d = d * scale - (slopes.empty() ? 0.0 : slopes[static_cast<std::size_t>(h)] * std::abs(i - j));
          p.push_back(d);
          mx = std::max(mx, d);
        }
        double sum = 0;
        for (auto& e : p) sum += (e = std::exp(e - mx));
        for (int c = 0; c < hd; ++c) {
          double o = 0;
          for (int j = cu[s]; j < cu[s + 1]; ++j)
            o += p[static_cast<std::size_t>(j - cu[s])] * v[static_cast<std::size_t>(j * width + h * hd + c)];
          out[static_cast<std::size_t>(i * width + h * hd + c)] = o / sum;
        }
      }
  return out;
}

struct AttentionCase {
  std::vector<int> lengths;
  int heads, hd;
  bool alibi;
};

class AttentionTest : public OpsTest, public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(AttentionTest, VarlenAndPaddedMatchTheReference) {
  const auto& c = GetParam();
  std::vector<std::vector<std::int32_t>> seqs;
  for (int n : c.lengths) seqs.emplace_back(static_cast<std::size_t>(n), 5);
  PackedBatch batch = PackedBatch::pack(seqs);
  const std::int64_t width = c.heads * c.hd;
  Tensor q = random_tensor({batch.total_tokens(), width}, 21),
         k = random_tensor({batch.total_tokens(), width}, 22),
         v = random_tensor({batch.total_tokens(), width}, 23);
  std::vector<float> slopes;
  AttentionParams params{c.heads, 1.0f / std::sqrt(static_cast<float>(c.hd)), {}, {}};
  if (c.alibi) {
    for (int h = 0; h < c.heads; ++h) slopes.push_back(std::pow(2.0f, -1.0f - static_cast<float>(h)));
    params.alibi_slopes = Tensor::from_floats(slopes, {c.heads});
  }
  Matrix want = attention_ref(as_double(q), as_double(k), as_double(v), batch.host_cu_seqlens, c.heads, c.hd,
                              params.softmax_scale, slopes);
  Tensor varlen = ops::attention_varlen(q, k, v, batch, params);
  Tensor padded = ops::attention_padded(q, k, v, batch, params);
  EXPECT_LT(relative_l2(varlen, want), 1e-6);
  EXPECT_LT(relative_l2(padded, want), 1e-6);
  EXPECT_LT(relative_l2(padded, as_double(varlen)), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionTest,
    ::testing::Values(AttentionCase{{7}, 4, 16, false},
                      AttentionCase{{1, 3, 130, 64, 2}, 2, 24, false},  // 130 > one query block
                      AttentionCase{{40, 9, 300}, 12, 8, true}, AttentionCase{{5, 5}, 1, 64, true}));

// Rotary inside attention (ESM-2's layout): the double reference rotates q and k first. q and k themselves
// are left as they were.
TEST_F(OpsTest, AttentionAppliesRotaryToQueriesAndKeys) {
  const int heads = 2, hd = 8;
  std::vector<std::vector<std::int32_t>> seqs = {
      std::vector<std::int32_t>(9, 5), std::vector<std::int32_t>(70, 5), std::vector<std::int32_t>(1, 5)};
  PackedBatch batch = PackedBatch::pack(seqs);
  const std::int64_t width = heads * hd;
  Tensor q = random_tensor({batch.total_tokens(), width}, 24),
         k = random_tensor({batch.total_tokens(), width}, 25),
         v = random_tensor({batch.total_tokens(), width}, 26);
  const Matrix q_before = as_double(q), k_before = as_double(k);
  std::vector<float> inv_freq = {1.0f, 0.3f, 0.05f, 0.001f};
  AttentionParams params{heads, 0.5f, {}, Tensor::from_floats(inv_freq, {hd / 2})};
  const auto& cu = batch.host_cu_seqlens;
  Matrix want = attention_ref(rotary_ref(q_before, inv_freq, cu, heads, hd),
                              rotary_ref(k_before, inv_freq, cu, heads, hd), as_double(v), cu, heads, hd,
                              params.softmax_scale, {});
  EXPECT_LT(relative_l2(ops::attention_varlen(q, k, v, batch, params), want), 1e-6);
  EXPECT_LT(relative_l2(ops::attention_padded(q, k, v, batch, params), want), 1e-6);
  EXPECT_LT(relative_l2(q, q_before), 1e-12);
  EXPECT_LT(relative_l2(k, k_before), 1e-12);
  params.rotary_inv_freq = Tensor::from_floats({1.0f, 0.5f}, {2});  // head_dim 8 needs 4 frequencies
  EXPECT_THROW(ops::attention_varlen(q, k, v, batch, params), std::exception);
}

TEST_F(OpsTest, PaddedAttentionMasksThePads) {
  // One short sequence beside a long one: if pad keys leaked into the softmax, the short
  // sequence's output would change (pads hold 1.0, so their scores are far from -inf).
  PackedBatch alone = PackedBatch::pack({std::vector<std::int32_t>(3, 5)});
  PackedBatch mixed = PackedBatch::pack({std::vector<std::int32_t>(3, 5), std::vector<std::int32_t>(50, 5)});
  const int heads = 2, hd = 4;
  Tensor q = random_tensor({53, heads * hd}, 31), k = random_tensor({53, heads * hd}, 32),
         v = random_tensor({53, heads * hd}, 33);
  AttentionParams p{heads, 0.5f, {}, {}};
  Tensor a = ops::attention_padded(q.rows(0, 3), k.rows(0, 3), v.rows(0, 3), alone, p);
  Tensor b = ops::attention_padded(q, k, v, mixed, p).rows(0, 3);
  EXPECT_LT(relative_l2(b, as_double(a)), 1e-6);
}

TEST_F(OpsTest, MeanPoolAveragesEachRange) {
  Tensor x = random_tensor({10, 6}, 41);
  Matrix xd = as_double(x), want;
  std::vector<TokenRange> ranges = {{1, 4}, {0, 10}, {9, 10}};
  for (auto r : ranges)
    for (int j = 0; j < 6; ++j) {
      double s = 0;
      for (int t = r.begin; t < r.end; ++t) s += xd[static_cast<std::size_t>(t * 6 + j)];
      want.push_back(s / (r.end - r.begin));
    }
  EXPECT_LT(relative_l2(ops::mean_pool_varlen(x, ranges), want), 1e-7);
  EXPECT_THROW(ops::mean_pool_varlen(x, {{3, 3}}), std::invalid_argument);
  EXPECT_THROW(ops::mean_pool_varlen(x, {{3, 11}}), std::invalid_argument);
}

TEST_F(OpsTest, BitIdenticalAcrossThreadCounts) {
  PackedBatch batch = PackedBatch::pack({std::vector<std::int32_t>(200, 5), std::vector<std::int32_t>(77, 5),
                                         std::vector<std::int32_t>(300, 5)});
  const std::int64_t n = batch.total_tokens(), d = 96;
  Tensor x = random_tensor({n, d}, 51), w = random_tensor({700, d}, 52), b = random_tensor({700}, 53);
  Tensor q = random_tensor({n, d}, 54), k = random_tensor({n, d}, 55), v = random_tensor({n, d}, 56);
  AttentionParams p{4, 0.2f, Tensor::from_floats({0.5f, 0.25f, 0.125f, 0.0625f}, {4}), {}};
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<Tensor> outs = {ops::linear_gelu(x, w, b), ops::attention_varlen(q, k, v, batch, p),
                                ops::attention_padded(q, k, v, batch, p),
                                ops::layer_norm(x, b.rows(0, d), b.rows(0, d), 1e-5f),
                                ops::mean_pool_varlen(x, {{0, 200}, {5, static_cast<std::int32_t>(n)}})};
    return outs;
  };
  auto one = run(1);
  for (int threads : {2, 4}) {
    auto many = run(threads);
    for (std::size_t i = 0; i < one.size(); ++i)
      EXPECT_TRUE(bit_identical(one[i], many[i])) << "output " << i << ", threads " << threads;
  }
}

}  // namespace
}  // namespace vnp::engine

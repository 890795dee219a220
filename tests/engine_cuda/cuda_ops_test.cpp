// Every CUDA op against the CPU backend on the same fresh random inputs (the CPU backend is itself
// tested against double-precision references in tests/engine): fp32 on the GPU within relative L2 1e-5,
// f16/bf16 within their rounding. Shapes that do not divide the kernels' tiles; outputs poisoned (NaN)
// before every kernel so an unwritten element cannot pass.
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/kernels.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "tests/engine_cuda/cuda_test_util.h"

namespace vnp::engine::test {
namespace {

// Before any backend exists: every block the GPU arena hands out is filled with NaN first.
const bool kPoisoned = (setenv("VIRNUCPRO_CUDA_POISON", "1", 1), true);

constexpr double kFp32Tolerance = 1e-5;

PackedBatch batch_with_lengths(const std::vector<int>& lengths, Device device) {
  std::vector<std::vector<std::int32_t>> seqs;
  for (int n : lengths) seqs.emplace_back(static_cast<std::size_t>(n), 5);
  return PackedBatch::pack(seqs, device);
}

TEST(CudaOps, PoisoningIsOn) {
  VNP_REQUIRE_GPU();
  ASSERT_TRUE(kPoisoned);
  Tensor t = Tensor::empty({4}, DType::kF32, gpu());
  for (float v : t.to_floats()) EXPECT_TRUE(std::isnan(v));
}

TEST(CudaOps, EmbeddingMatchesCpuAndRejectsBadIds) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  Tensor table = random_tensor({33, 70}, seed);
  Tensor ids = Tensor::from_ints({0, 32, 5, 5, 17, 1}, {6});
  Tensor cpu = ops::embedding(table, ids);
  Tensor gpu_out = ops::embedding(table.to(gpu()), ids.to(gpu()));
  EXPECT_EQ(relative_l2(gpu_out, cpu), 0.0);
  Tensor bad = Tensor::from_ints({3, 33}, {2}).to(gpu());
  EXPECT_THROW(ops::embedding(table.to(gpu()), bad).to(Device::cpu()), std::out_of_range);
  // The error is reported once; the backend stays usable.
  EXPECT_EQ(relative_l2(ops::embedding(table.to(gpu()), ids.to(gpu())), cpu), 0.0);
}

struct GemmShape {
  std::int64_t rows, in, out;
};

class CudaLinear : public ::testing::TestWithParam<GemmShape> {};

TEST_P(CudaLinear, LinearGeluAndAccumulateMatchCpu) {
  VNP_REQUIRE_GPU();
  const auto [rows, in, out] = GetParam();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  Tensor x = random_tensor({rows, in}, seed), w = random_tensor({out, in}, seed + 1, 0.1f);
  Tensor b = random_tensor({out}, seed + 2), acc = random_tensor({rows, out}, seed + 3);
  Tensor gx = x.to(gpu()), gw = w.to(gpu()), gb = b.to(gpu());
  EXPECT_LT(relative_l2(ops::linear(gx, gw, gb), ops::linear(x, w, b)), kFp32Tolerance);
  EXPECT_LT(relative_l2(ops::linear(gx, gw), ops::linear(x, w)), kFp32Tolerance);
  EXPECT_LT(relative_l2(ops::linear_gelu(gx, gw, gb), ops::linear_gelu(x, w, b)), kFp32Tolerance);
  Tensor gacc = acc.to(gpu());
  ops::linear_accumulate_(acc, x, w, b);
  ops::linear_accumulate_(gacc, gx, gw, gb);
  EXPECT_LT(relative_l2(gacc, acc), kFp32Tolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaLinear,
                         ::testing::Values(GemmShape{1, 1, 1}, GemmShape{37, 53, 29}, GemmShape{300, 256, 64},
                                           GemmShape{129, 640, 2560}, GemmShape{7, 2560, 10240}));

TEST(CudaOps, LinearInHalfPrecisionIsCloseToFp32) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  Tensor x = random_tensor({200, 512}, seed), w = random_tensor({384, 512}, seed + 1, 0.05f);
  Tensor b = random_tensor({384}, seed + 2);
  Tensor want = ops::linear_gelu(x, w, b);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    Tensor gx = ops::cast(x.to(gpu()), dt), gw = ops::cast(w.to(gpu()), dt);
    // bias in f32 (cast by the backend) and in the compute dtype
    EXPECT_LT(relative_l2(ops::linear_gelu(gx, gw, b.to(gpu())), want), dt == DType::kF16 ? 2e-3 : 1e-2);
    EXPECT_LT(relative_l2(ops::linear_gelu(gx, gw, ops::cast(b.to(gpu()), dt)), want),
              dt == DType::kF16 ? 2e-3 : 1e-2);
  }
}

TEST(CudaOps, LayerNormMatchesCpu) {
  VNP_REQUIRE_GPU();
  for (std::int64_t cols : {1, 37, 64, 2560, 3001}) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << "cols " << cols << " seed " << seed);
    // A large common offset: a one-pass sum-of-squares variance would lose the digits here.
    auto values = random_floats(static_cast<std::size_t>(23 * cols), seed);
    for (auto& v : values) v += 300.0f;
    Tensor x = Tensor::from_floats(values, {23, cols});
    Tensor g = random_tensor({cols}, seed + 1), b = random_tensor({cols}, seed + 2);
    Tensor cpu = ops::layer_norm(x, g, b, 1e-5f);
    EXPECT_LT(relative_l2(ops::layer_norm(x.to(gpu()), g.to(gpu()), b.to(gpu()), 1e-5f), cpu),
              cols == 1 ? 1e-3 : 2e-5);
  }
}

// f16/bf16 layer norm and rotary (the vectorised kernels) against fp32 on the same rounded inputs.
TEST(CudaOps, HalfPrecisionLayerNormAndRotary) {
  VNP_REQUIRE_GPU();
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " seed " << seed);
    const double tol = dt == DType::kF16 ? 1e-3 : 8e-3;
    for (std::int64_t cols : {64, 768, 2560, 2568, 4100}) {
      Tensor h = ops::cast(random_tensor({19, cols}, seed, 2.0f).to(gpu()), dt);
      Tensor rounded = ops::cast(h, DType::kF32).to(Device::cpu());
      Tensor g = random_tensor({cols}, seed + 1), b = random_tensor({cols}, seed + 2);
      EXPECT_LT(relative_l2(ops::layer_norm(h, g.to(gpu()), b.to(gpu()), 1e-5f),
                            ops::layer_norm(rounded, g, b, 1e-5f)),
                tol)
          << "cols " << cols;
    }
    const int heads = 5, hd = 64;
    PackedBatch batch = batch_with_lengths({3, 168, 1}, Device::cpu());
    Tensor h = ops::cast(random_tensor({batch.total_tokens(), heads * hd}, seed + 3).to(gpu()), dt);
    Tensor rounded = ops::cast(h, DType::kF32).to(Device::cpu());
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[static_cast<std::size_t>(i)] = std::pow(10000.0f, -2.0f * i / hd);
    Tensor f = Tensor::from_floats(inv, {hd / 2});
    ops::rotary_(h, f.to(gpu()), batch.to(gpu()), heads);
    ops::rotary_(rounded, f, batch, heads);
    EXPECT_LT(relative_l2(h, rounded), tol);
  }
}

TEST(CudaOps, ElementwiseOpsMatchCpu) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  for (std::int64_t cols : {6, 8, 3072}) {  // vectorised (multiple of 4/8) and scalar paths
    Tensor x = random_tensor({17, cols}, seed, 3.0f), y = random_tensor({17, cols}, seed + 1);
    Tensor gx = x.to(gpu()), gy = y.to(gpu());
    EXPECT_LT(relative_l2(ops::gelu(gx), ops::gelu(x)), 1e-6);
    EXPECT_LT(relative_l2(ops::gated_gelu(gx), ops::gated_gelu(x)), 1e-6);
    EXPECT_EQ(relative_l2(ops::add(gx, gy), ops::add(x, y)), 0.0);
    Tensor sx = x.clone(), sgx = gx.clone();
    ops::scale_(sx, 0.88f);
    ops::scale_(sgx, 0.88f);
    EXPECT_EQ(relative_l2(sgx, sx), 0.0);
    Tensor rs = random_tensor({17}, seed + 2);
    ops::scale_rows_(sx, rs);
    ops::scale_rows_(sgx, rs.to(gpu()));
    EXPECT_EQ(relative_l2(sgx, sx), 0.0);
  }
  // Half-precision versions against fp32 on the same (rounded) inputs.
  Tensor x = random_tensor({33, 130}, seed + 3, 2.0f);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    Tensor h = ops::cast(x.to(gpu()), dt);
    Tensor rounded = ops::cast(h, DType::kF32).to(Device::cpu());
    const double tol = dt == DType::kF16 ? 1e-3 : 8e-3;
    EXPECT_LT(relative_l2(ops::gelu(h), ops::gelu(rounded)), tol);
    EXPECT_LT(relative_l2(ops::gated_gelu(h), ops::gated_gelu(rounded)), tol);
    EXPECT_LT(relative_l2(ops::cast(h, DType::kF32), x), tol);
  }
}

TEST(CudaOps, RotaryMatchesCpuAndRestartsPerSequence) {
  VNP_REQUIRE_GPU();
  for (int hd : {16, 24, 64, 128}) {
    const auto seed = fresh_seed();
    SCOPED_TRACE(::testing::Message() << "head_dim " << hd << " seed " << seed);
    const int heads = 3;
    PackedBatch batch = batch_with_lengths({1, 7, 300, 66}, Device::cpu());
    Tensor x = random_tensor({batch.total_tokens(), heads * hd}, seed);
    std::vector<float> inv(static_cast<std::size_t>(hd / 2));
    for (int i = 0; i < hd / 2; ++i) inv[static_cast<std::size_t>(i)] = std::pow(10000.0f, -2.0f * i / hd);
    Tensor f = Tensor::from_floats(inv, {hd / 2});
    Tensor gx = x.to(gpu());
    ops::rotary_(x, f, batch, heads);
    ops::rotary_(gx, f.to(gpu()), batch.to(gpu()), heads);
    EXPECT_LT(relative_l2(gx, x), 1e-6);
  }
}

TEST(CudaOps, MeanPoolMatchesCpu) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  Tensor x = random_tensor({500, 300}, seed);
  std::vector<TokenRange> ranges = {{0, 1}, {1, 168}, {170, 500}, {3, 4}};
  EXPECT_LT(relative_l2(ops::mean_pool_varlen(x.to(gpu()), ranges), ops::mean_pool_varlen(x, ranges)), 1e-7);
  Tensor h = ops::cast(x.to(gpu()), DType::kBF16);
  Tensor rounded = ops::cast(h, DType::kF32).to(Device::cpu());
  EXPECT_LT(relative_l2(ops::mean_pool_varlen(h, ranges), ops::mean_pool_varlen(rounded, ranges)), 1e-7);
}

// ----------------------------------------------------------------------------------------------
// Attention

struct AttentionCase {
  int head_dim;
  bool alibi;
};

class CudaAttention : public ::testing::TestWithParam<AttentionCase> {};

AttentionParams params_for(int heads, int hd, bool alibi, Device device) {
  AttentionParams p;
  p.num_heads = heads;
  p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (alibi) {
    std::vector<float> slopes;
    for (int h = 0; h < heads; ++h) slopes.push_back(std::pow(2.0f, -0.5f * static_cast<float>(h + 1)));
    p.alibi_slopes = Tensor::from_floats(slopes, {heads}).to(device);
  }
  return p;
}

TEST_P(CudaAttention, Fp32VarlenAndPaddedMatchCpu) {
  VNP_REQUIRE_GPU();
  const auto [hd, alibi] = GetParam();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  const int heads = 5;
  PackedBatch batch = batch_with_lengths({1, 2, 63, 64, 65, 130, 300}, Device::cpu());
  PackedBatch gbatch = batch.to(gpu());
  Shape shape = {batch.total_tokens(), heads * hd};
  Tensor q = random_tensor(shape, seed, 2.0f), k = random_tensor(shape, seed + 1),
         v = random_tensor(shape, seed + 2);
  Tensor gq = q.to(gpu()), gk = k.to(gpu()), gv = v.to(gpu());
  AttentionParams p = params_for(heads, hd, alibi, Device::cpu()), gp = params_for(heads, hd, alibi, gpu());
  Tensor want = ops::attention_varlen(q, k, v, batch, p);
  EXPECT_LT(relative_l2(ops::attention_varlen(gq, gk, gv, gbatch, gp), want), kFp32Tolerance);
  EXPECT_LT(relative_l2(ops::attention_padded(gq, gk, gv, gbatch, gp), want), kFp32Tolerance);
}

// f16/bf16: the same inputs rounded to the type, against the CPU in fp32 on the rounded values; only the
// kernel's own rounding (probabilities and output in the type) remains. Every kernel that takes the
// arguments is run: the short one only sees batches of at most 256 tokens per sequence.
TEST_P(CudaAttention, HalfPrecisionVarlenAndPaddedMatchCpu) {
  VNP_REQUIRE_GPU();
  const auto [hd, alibi] = GetParam();
  for (DType dt : {DType::kF16, DType::kBF16}) {
    for (const std::vector<int>& lengths :
         {std::vector<int>{1, 17, 64, 65, 168, 333}, std::vector<int>{1, 17, 63, 64, 65, 130, 256}}) {
      const auto seed = fresh_seed();
      SCOPED_TRACE(::testing::Message()
                   << dtype_name(dt) << " seed " << seed << " longest " << lengths.back());
      const int heads = 3;
      PackedBatch batch = batch_with_lengths(lengths, Device::cpu());
      PackedBatch gbatch = batch.to(gpu());
      Shape shape = {batch.total_tokens(), heads * hd};
      auto make = [&](std::uint32_t s, float scale) {
        return ops::cast(random_tensor(shape, s, scale).to(gpu()), dt);
      };
      Tensor gq = make(seed, 2.0f), gk = make(seed + 1, 1.0f), gv = make(seed + 2, 1.0f);
      auto host = [](const Tensor& t) { return ops::cast(t, DType::kF32).to(Device::cpu()); };
      AttentionParams p = params_for(heads, hd, alibi, Device::cpu()),
                      gp = params_for(heads, hd, alibi, gpu());
      Tensor want = ops::attention_varlen(host(gq), host(gk), host(gv), batch, p);
      const double tol = dt == DType::kF16 ? 3e-3 : 2e-2;
      EXPECT_LT(relative_l2(ops::attention_varlen(gq, gk, gv, gbatch, gp), want), tol);
      EXPECT_LT(relative_l2(ops::attention_padded(gq, gk, gv, gbatch, gp), want), tol);

      using cuda::kernels::AttentionKernel;
      Tensor out = Tensor::zeros(shape, dt, gpu());
      cuda::kernels::AttentionArgs args{gq.raw(),
                                        gk.raw(),
                                        gv.raw(),
                                        out.raw(),
                                        dt,
                                        heads,
                                        hd,
                                        gbatch.cu_seqlens.data<std::int32_t>(),
                                        static_cast<int>(batch.num_sequences()),
                                        batch.max_seqlen,
                                        gp.softmax_scale,
                                        alibi ? gp.alibi_slopes.data<float>() : nullptr};
      const bool tensor_cores = hd == 64 || hd == 128, fits_short = hd == 64 && batch.max_seqlen <= 256;
      EXPECT_EQ(cuda::kernels::attention_kernel_for(args),
                fits_short ? AttentionKernel::kShort
                           : (tensor_cores ? AttentionKernel::kTiled : AttentionKernel::kPlain));
      cuda::synchronize(0);  // the inputs come from the backend's own (non-blocking) stream
      for (AttentionKernel kernel :
           {AttentionKernel::kPlain, AttentionKernel::kTiled, AttentionKernel::kShort}) {
        SCOPED_TRACE(static_cast<int>(kernel));
        const bool takes = kernel == AttentionKernel::kPlain ||
                           (kernel == AttentionKernel::kTiled && tensor_cores) ||
                           (kernel == AttentionKernel::kShort && fits_short);
        if (!takes) {
          EXPECT_THROW(cuda::kernels::attention_varlen_with(kernel, args, nullptr), std::invalid_argument);
          continue;
        }
        cuda::kernels::attention_varlen_with(kernel, args, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_LT(relative_l2(out, want), tol);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    HeadDims, CudaAttention,
    ::testing::Values(AttentionCase{8, false}, AttentionCase{8, true}, AttentionCase{16, false},
                      AttentionCase{24, false}, AttentionCase{32, true}, AttentionCase{64, false},
                      AttentionCase{64, true}, AttentionCase{128, false}, AttentionCase{128, true}),
    [](const auto& param_info) {
      return "hd" + std::to_string(param_info.param.head_dim) + (param_info.param.alibi ? "_alibi" : "");
    });

// Rotary inside attention on the GPU: the short kernel rotates q and k as it loads them; the tiled and
// padded paths rotate copies first. All against the CPU (rotary, then attention) on the same rounded inputs.
TEST(CudaOps, AttentionWithRotaryMatchesCpu) {
  VNP_REQUIRE_GPU();
  const int heads = 3, hd = 64;
  std::vector<float> inv_freq;
  for (int i = 0; i < hd / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / hd));
  for (DType dt : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (const std::vector<int>& lengths : {std::vector<int>{1, 17, 168, 256, 5}, std::vector<int>{3, 300}}) {
      const auto seed = fresh_seed();
      SCOPED_TRACE(::testing::Message()
                   << dtype_name(dt) << " seed " << seed << " longest " << lengths.back());
      PackedBatch batch = batch_with_lengths(lengths, Device::cpu());
      PackedBatch gbatch = batch.to(gpu());
      Shape shape = {batch.total_tokens(), heads * hd};
      auto make = [&](std::uint32_t s) { return ops::cast(random_tensor(shape, s, 1.0f).to(gpu()), dt); };
      Tensor gq = make(seed), gk = make(seed + 1), gv = make(seed + 2);
      auto host = [](const Tensor& t) { return ops::cast(t, DType::kF32).to(Device::cpu()); };
      AttentionParams p{heads, 0.125f, {}, Tensor::from_floats(inv_freq, {hd / 2})};
      AttentionParams gp{heads, 0.125f, {}, p.rotary_inv_freq.to(gpu())};
      Tensor want = ops::attention_varlen(host(gq), host(gk), host(gv), batch, p);
      // fp32 is exact; in 16 bits the rotated q and k are rounded once more than on the CPU.
      const double tol = dt == DType::kF32 ? kFp32Tolerance : (dt == DType::kF16 ? 3e-3 : 2e-2);
      EXPECT_LT(relative_l2(ops::attention_varlen(gq, gk, gv, gbatch, gp), want), tol);
      EXPECT_LT(relative_l2(ops::attention_padded(gq, gk, gv, gbatch, gp), want), tol);
    }
  }
}

// Long sequences: the online softmax runs over many key tiles, with scores large enough that a missing
// rescale would show.
TEST(CudaOps, LongSequenceAttention) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  SCOPED_TRACE(seed);
  const int heads = 2, hd = 64;
  PackedBatch batch = batch_with_lengths({1026, 700}, Device::cpu());
  Shape shape = {batch.total_tokens(), heads * hd};
  Tensor q = random_tensor(shape, seed, 3.0f), k = random_tensor(shape, seed + 1),
         v = random_tensor(shape, seed + 2);
  AttentionParams p = params_for(heads, hd, false, Device::cpu()), gp = params_for(heads, hd, false, gpu());
  Tensor want = ops::attention_varlen(q, k, v, batch, p);
  EXPECT_LT(
      relative_l2(ops::attention_varlen(q.to(gpu()), k.to(gpu()), v.to(gpu()), batch.to(gpu()), gp), want),
      kFp32Tolerance);
  Tensor bq = ops::cast(q.to(gpu()), DType::kBF16), bk = ops::cast(k.to(gpu()), DType::kBF16),
         bv = ops::cast(v.to(gpu()), DType::kBF16);
  auto host = [](const Tensor& t) { return ops::cast(t, DType::kF32).to(Device::cpu()); };
  Tensor want_rounded = ops::attention_varlen(host(bq), host(bk), host(bv), batch, p);
  EXPECT_LT(relative_l2(ops::attention_varlen(bq, bk, bv, batch.to(gpu()), gp), want_rounded), 2e-2);
}

// The arena: a repeated batch shape allocates nothing new from the driver.
TEST(CudaOps, SteadyStateBatchesDoNotCallCudaMalloc) {
  VNP_REQUIRE_GPU();
  const auto seed = fresh_seed();
  Tensor w = random_tensor({256, 256}, seed, 0.1f).to(gpu());
  PackedBatch batch = batch_with_lengths({100, 50, 77}, gpu());
  auto step = [&] {
    Tensor x = random_tensor({batch.total_tokens(), 256}, seed + 1).to(gpu());
    Tensor q = ops::linear(x, w), k = ops::linear(x, w), v = ops::linear_gelu(x, w);
    Tensor a = ops::attention_varlen(q, k, v, batch, params_for(4, 64, false, gpu()));
    ops::linear_accumulate_(x, a, w);
    return ops::mean_pool_varlen(x, {{0, 100}, {100, 150}, {150, 227}}).to(Device::cpu());
  };
  Tensor first = step();
  const auto before = cuda::memory_stats(0);
  Tensor second = step();
  const auto after = cuda::memory_stats(0);
  EXPECT_EQ(after.cudamalloc_calls, before.cudamalloc_calls);
  EXPECT_EQ(relative_l2(second, first), 0.0);
}

}  // namespace
}  // namespace vnp::engine::test

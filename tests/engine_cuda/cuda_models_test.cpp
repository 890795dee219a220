// The models on the GPU, through the same model code as on the CPU: ESM-2 (tiny: head_dim 16, small64:
// head_dim 64 as in 3B) and DNABERT-S (tiny, ALiBi, head_dim 8) in fp32 against the CPU (relative L2
// <= 1e-5) and against the fixtures' independent references; the v1 padded path too.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/ops.h"
#include "models/dnabert2.h"
#include "models/esm2.h"
#include "test_util.h"
#include "tests/engine_cuda/cuda_test_util.h"
#include "tokenize/esm_alphabet.h"

namespace vnp::engine::test {
namespace {

using models::Dnabert2;
using models::Esm2;

const bool kPoisoned = (setenv("VIRNUCPRO_CUDA_POISON", "1", 1), true);

std::string data(const std::string& relative) {
  return vnp::test::data_path(relative).string();
}

nlohmann::json reference(const std::string& fixture) {
  std::ifstream in(data(fixture + "/reference.json"));
  return nlohmann::json::parse(in);
}

// The fixture's proteins, packed, and the reference mean embeddings as an [n, hidden] tensor.
struct EsmCase {
  std::vector<std::vector<std::int32_t>> tokens;
  Tensor want;
};

EsmCase esm_case(const std::string& fixture) {
  const auto ref = reference(fixture);
  tokenize::EsmAlphabet alphabet;
  EsmCase c;
  std::vector<float> means;
  std::int64_t hidden = 0;
  for (const auto& s : ref["sequences"]) {
    c.tokens.push_back(alphabet.encode(s["protein"].get<std::string>()));
    const auto mean = s["mean"].get<std::vector<double>>();
    hidden = static_cast<std::int64_t>(mean.size());
    means.insert(means.end(), mean.begin(), mean.end());
  }
  c.want = Tensor::from_floats(means, {static_cast<std::int64_t>(c.tokens.size()), hidden});
  return c;
}

class CudaEsm2 : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaEsm2, Fp32MatchesCpuAndReference) {
  VNP_REQUIRE_GPU();
  ASSERT_TRUE(kPoisoned);
  const std::string fixture = GetParam();
  EsmCase c = esm_case(fixture);
  Esm2 cpu = Esm2::load(data(fixture));
  Esm2 gpu_model = Esm2::load(data(fixture), gpu());
  Tensor cpu_mean = cpu.embed(PackedBatch::pack(c.tokens));
  Tensor gpu_mean = gpu_model.embed(PackedBatch::pack(c.tokens, gpu()));
  EXPECT_EQ(gpu_mean.device(), gpu());
  EXPECT_LT(relative_l2(gpu_mean, cpu_mean), 1e-5);
  EXPECT_LT(relative_l2(gpu_mean, c.want), 1e-5);
  // Per sequence too: a short protein must not hide behind the norm of the long ones.
  for (std::int64_t i = 0; i < c.want.dim(0); ++i)
    EXPECT_LT(relative_l2(gpu_mean.rows(i, i + 1).to(Device::cpu()), c.want.rows(i, i + 1)), 1e-5)
        << "sequence " << i;
  // The v1 padded path on the GPU gives the same embeddings.
  gpu_model.set_v1_attention(true);
  EXPECT_LT(relative_l2(gpu_model.embed(PackedBatch::pack(c.tokens, gpu())), cpu_mean), 1e-5);
}

// --precision f16/bf16: per-embedding cosine to fp32 >= 0.9999 (f16) / 0.999 (bf16), SPEC §9's bounds.
TEST_P(CudaEsm2, HalfPrecisionIsCloseToFp32) {
  VNP_REQUIRE_GPU();
  const std::string fixture = GetParam();
  EsmCase c = esm_case(fixture);
  Esm2 model = Esm2::load(data(fixture), gpu());
  const PackedBatch batch = PackedBatch::pack(c.tokens, gpu());
  Tensor fp32 = model.embed(batch);
  model.set_compute_dtype(DType::kF16);
  Tensor f16 = model.embed(batch);
  EXPECT_EQ(f16.dtype(), DType::kF32);
  EXPECT_GE(min_row_cosine(f16, fp32), 0.9999);
  model = Esm2::load(data(fixture), gpu());
  model.set_compute_dtype(DType::kBF16);
  EXPECT_GE(min_row_cosine(model.embed(batch), fp32), 0.999);
  model.set_v1_attention(true);
  EXPECT_GE(min_row_cosine(model.embed(batch), fp32), 0.999);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaEsm2, ::testing::Values("esm2_tiny", "esm2_small64"));

TEST(CudaDnabert2, Fp32MatchesCpuAndReference) {
  VNP_REQUIRE_GPU();
  const auto ref = reference("dnabert2_tiny");
  Dnabert2 cpu = Dnabert2::load(data("dnabert2_tiny"));
  Dnabert2 gpu_model = Dnabert2::load(data("dnabert2_tiny"), gpu());
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<float> means;
  for (const auto& s : ref["sequences"]) {
    tokens.push_back(s["tokens"].get<std::vector<std::int32_t>>());
    const auto mean = s["mean"].get<std::vector<double>>();
    means.insert(means.end(), mean.begin(), mean.end());
  }
  Tensor want =
      Tensor::from_floats(means, {static_cast<std::int64_t>(tokens.size()), cpu.config().hidden_size});
  Tensor cpu_mean = cpu.embed(PackedBatch::pack(tokens));
  Tensor gpu_mean = gpu_model.embed(PackedBatch::pack(tokens, gpu()));
  EXPECT_LT(relative_l2(gpu_mean, cpu_mean), 1e-5);
  EXPECT_LT(relative_l2(gpu_mean, want), 1e-5);
  Tensor per_token_cpu = cpu.forward(PackedBatch::pack(tokens));
  Tensor per_token_gpu = gpu_model.forward(PackedBatch::pack(tokens, gpu()));
  EXPECT_LT(relative_l2(per_token_gpu, per_token_cpu), 1e-5);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    Dnabert2 half = Dnabert2::load(data("dnabert2_tiny"), gpu());
    half.set_compute_dtype(dt);
    EXPECT_GE(min_row_cosine(half.embed(PackedBatch::pack(tokens, gpu())), gpu_mean),
              dt == DType::kF16 ? 0.9999 : 0.999)
        << dtype_name(dt);
  }
}

}  // namespace
}  // namespace vnp::engine::test

// The default tokens per encoder batch (pipeline::default_token_budget): a pure function of the free
// memory, the encoders' sizes and the compute type.
#include <gtest/gtest.h>

#include "pipeline/encoders.h"
#include "test_util.h"

namespace vnp::pipeline {
namespace {

using engine::Device;
using engine::DType;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

engine::Backend::MemoryInfo free_memory(std::uint64_t free_bytes) {
  return {free_bytes, 80 * kGiB};
}

TEST(TokenBudget, ActivationBytesPerToken) {
  // ESM-2 3B (hidden 2560, FFN 10240): (6·2560 + 10240) elements in the compute type + 2560 f32.
  EXPECT_EQ(activation_bytes_per_token(2560, 10240, DType::kF16), 25600 * 2 + 2560 * 4);
  EXPECT_EQ(activation_bytes_per_token(2560, 10240, DType::kBF16), 25600 * 2 + 2560 * 4);
  EXPECT_EQ(activation_bytes_per_token(2560, 10240, DType::kF32), 25600 * 4 + 2560 * 4);
}

TEST(TokenBudget, HalfTheFreeMemoryInStepsOf1024WithinBounds) {
  const Device gpu = Device::cuda(0);
  const std::int64_t per_token = activation_bytes_per_token(2560, 10240, DType::kF16);  // 61,440
  // 2 GiB free: 1 GiB / 61,440 = 17,476.3 tokens -> 17,408.
  EXPECT_EQ(token_budget_for_memory(gpu, free_memory(2 * kGiB), per_token), 17408);
  // Plenty free: the ceiling (cuBLASLt's GEMMs are at their peak already).
  EXPECT_EQ(token_budget_for_memory(gpu, free_memory(70 * kGiB), per_token), 65536);
  // Little free, or unknown: the floor (a batch that still does not fit is split and retried).
  EXPECT_EQ(token_budget_for_memory(gpu, free_memory(64 << 20), per_token), 4096);
  EXPECT_EQ(token_budget_for_memory(gpu, {}, per_token), 4096);
  // More bytes per token, fewer tokens: fp32 at 112,640 bytes a token, 4 GiB free -> 19,065 -> 18,432.
  EXPECT_EQ(token_budget_for_memory(gpu, free_memory(4 * kGiB),
                                    activation_bytes_per_token(2560, 10240, DType::kF32)),
            18432);
  for (std::uint64_t free = 0; free < 16 * kGiB; free += 333 << 20) {
    const std::int64_t b = token_budget_for_memory(gpu, free_memory(free), per_token);
    EXPECT_EQ(b % 1024, 0) << free;
    EXPECT_GE(b, 4096) << free;
    EXPECT_LE(b, 65536) << free;
    if (b > 4096) {
      EXPECT_LE(static_cast<std::uint64_t>(b * per_token), free / 2) << free;
    }
  }
}

TEST(TokenBudget, TheCpuAlwaysTakes4096) {
  EXPECT_EQ(token_budget_for_memory(Device::cpu(), free_memory(500 * kGiB), 1000), 4096);
  EXPECT_EQ(token_budget_for_memory(Device::cpu(), {}, 1000), 4096);
  EXPECT_EQ(default_token_budget(Device::cpu(), 1000), 4096);
}

TEST(TokenBudget, LoadedEncodersUseTheLargerEncoder) {
  const Encoders enc = Encoders::load({test::data_path("esm2_tiny"), test::data_path("dnabert2_tiny"),
                                       test::data_path("mlp/mlp_tiny_160x32.pth")},
                                      Device::cpu());
  const auto& esm = enc.esm.config();
  const auto& dnabert = enc.dnabert.config();
  EXPECT_EQ(
      activation_bytes_per_token(enc),
      std::max(activation_bytes_per_token(esm.hidden, esm.intermediate, DType::kF32),
               activation_bytes_per_token(dnabert.hidden_size, 2 * dnabert.intermediate_size, DType::kF32)));
  EXPECT_EQ(default_token_budget({&enc}), 4096);
}

}  // namespace
}  // namespace vnp::pipeline

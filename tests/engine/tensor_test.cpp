// Tensor basics, half/bfloat16 conversions, device dispatch and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "util/error.h"

namespace vnp::engine {
namespace {

TEST(Tensor, ShapesRowsAndReshapeShareTheBuffer) {
  Tensor t = Tensor::from_floats({0, 1, 2, 3, 4, 5}, {3, 2});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.dim(-1), 2);
  Tensor r = t.rows(1, 3);
  EXPECT_EQ(r.shape(), (Shape{2, 2}));
  EXPECT_EQ(r.to_floats(), (std::vector<float>{2, 3, 4, 5}));
  r.data<float>()[0] = 42;
  EXPECT_EQ(t.data<float>()[2], 42);
  EXPECT_EQ(t.reshape({6}).shape(), (Shape{6}));
  EXPECT_THROW(t.reshape({4}), std::invalid_argument);
  EXPECT_THROW(t.rows(2, 4), std::out_of_range);
  EXPECT_THROW(t.data<std::int32_t>(), std::invalid_argument);
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(t.describe(), "f32[3, 2] on cpu");
}

TEST(Tensor, BorrowKeepsTheOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3});
  std::weak_ptr<std::vector<float>> watch = owner;
  Tensor t = Tensor::borrow(owner->data(), {3}, DType::kF32, Device::cpu(), owner);
  owner.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(t.to_floats(), (std::vector<float>{1, 2, 3}));
  t = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Tensor, HalfConversionsMatchKnownBits) {
  // fp16 bits of ESM-2's head_dim-64 inv_freq (reference/models.md §1.4), first entries.
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0x3a00), 0.75f);
  EXPECT_EQ(float_to_half(0.7498942f), 0x3a00);
  EXPECT_EQ(float_to_half(1.0f / std::pow(10000.0f, 4.0f / 64)), 0x3880);
  EXPECT_EQ(half_to_float(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(float_to_half(0x1p-25f), 0x0000);  // ties to even: rounds down to 0
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // overflows to inf
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  // Every finite half survives a round trip.
  for (std::uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7c00) != 0x7c00) {
      ASSERT_EQ(float_to_half(half_to_float(static_cast<std::uint16_t>(h))), h) << h;
    }
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.00390625f)), 1.0f);  // tie to even
  EXPECT_EQ(float_to_bf16(3.0f), 0x4040);
}

TEST(Tensor, E4m3ConversionsMatchTheFormat) {
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);     // exponent 7 = bias
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);   // largest finite
  EXPECT_EQ(e4m3_to_float(0x01), 0x1p-9f);  // smallest subnormal
  EXPECT_EQ(e4m3_to_float(0x08), 0x1p-6f);  // smallest normal
  EXPECT_EQ(e4m3_to_float(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7f)));
  EXPECT_EQ(float_to_e4m3(1.0625f), 0x38);  // halfway between 1 and 1.125: to even (1)
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3a);  // halfway between 1.125 and 1.25: to even (1.25)
  EXPECT_EQ(float_to_e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(float_to_e4m3(-1e30f), 0xfe);
  EXPECT_EQ(float_to_e4m3(0x1p-10f), 0x00);   // half the smallest subnormal: to even (0)
  EXPECT_EQ(float_to_e4m3(0x1.8p-9f), 0x02);  // 1.5 subnormal units: to even (2)
  EXPECT_EQ(float_to_e4m3(std::nanf("")), 0x7f);
  // Every finite code survives a round trip (both zeros included).
  for (std::uint32_t b = 0; b < 0x100; ++b)
    if ((b & 0x7f) != 0x7f) {
      ASSERT_EQ(float_to_e4m3(e4m3_to_float(static_cast<std::uint8_t>(b))), b) << b;
    }
  // Between neighbours: nearest wins.
  EXPECT_EQ(float_to_e4m3(1.06f), 0x38);
  EXPECT_EQ(float_to_e4m3(1.07f), 0x39);
}

// f8 tensors with block scales (Tensor::F8Scaling), on the host: each element dequantises through the
// scale of its 1×128 run ([ceil(cols/128), rows], rows fastest) or 128×128 tile ([ceil(rows/128),
// roundup4(ceil(cols/128))]); scales of another shape are refused, and so are row slices and reshapes.
TEST(Tensor, F8BlockScalesDequantiseByLayout) {
  const std::int64_t rows = 130, cols = 200;  // partial blocks both ways
  Tensor codes = Tensor::empty({rows, cols}, DType::kF8E4M3);
  std::memset(codes.raw(), float_to_e4m3(1.0f), codes.nbytes());
  using Scaling = Tensor::F8Scaling;
  for (Scaling scaling : {Scaling::kBlock1x128, Scaling::kBlock128x128}) {
    const Shape shape = f8_block_scale_shape(scaling, rows, cols);
    EXPECT_EQ(shape, scaling == Scaling::kBlock1x128 ? (Shape{2, rows}) : (Shape{2, 4}));
    std::vector<float> scale(static_cast<std::size_t>(shape[0] * shape[1]));
    for (std::size_t i = 0; i < scale.size(); ++i) scale[i] = static_cast<float>(i + 1);
    Tensor t = codes.with_block_scale(Tensor::from_floats(scale, shape), scaling);
    EXPECT_EQ(t.f8_scaling(), scaling);
    const auto values = t.to(Device::cpu()).to_floats();  // to() keeps the scaling
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        const std::int64_t at = scaling == Scaling::kBlock1x128 ? c / 128 * rows + r : r / 128 * 4 + c / 128;
        ASSERT_EQ(values[static_cast<std::size_t>(r * cols + c)], scale[static_cast<std::size_t>(at)])
            << r << ", " << c;
      }
    EXPECT_THROW(t.rows(0, 1), std::invalid_argument);
    EXPECT_THROW(t.reshape({cols, rows}), std::invalid_argument);
    EXPECT_THROW(codes.with_block_scale(Tensor::from_floats(scale, {shape[0] * shape[1]}), scaling),
                 std::invalid_argument);
  }
  EXPECT_EQ(codes.with_row_scale(Tensor::from_floats(std::vector<float>(rows, 2.0f), {rows})).f8_scaling(),
            Scaling::kRow);
}

TEST(Tensor, CastRoundTrips) {
  Tensor t = Tensor::from_floats({0.5f, -1.25f, 3.0f}, {3});
  EXPECT_EQ(ops::cast(ops::cast(t, DType::kF16), DType::kF32).to_floats(), t.to_floats());
  EXPECT_EQ(ops::cast(ops::cast(t, DType::kBF16), DType::kF32).to_floats(), t.to_floats());
}

// Without a usable GPU (a CPU-only build, or a CUDA build on a machine without one), asking for one is
// a DeviceError that says why.
TEST(Backend, CudaWithoutCudaIsADeviceError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  try {
    Tensor::empty({2}, DType::kF32, Device::cuda(0));
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    const std::string why = e.what();
    EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
  }
}

TEST(ThreadPool, CoversEveryChunkOnceAndRethrows) {
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(1000, 7, [&](std::int64_t b, std::int64_t e) {
      EXPECT_TRUE(b % 7 == 0 && (e - b == 7 || e == 1000));
      for (auto i = b; i < e; ++i) hits[static_cast<std::size_t>(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    EXPECT_THROW(parallel_for(100, 1,
                              [](std::int64_t b, std::int64_t) {
                                if (b == 50) throw std::runtime_error("chunk 50");
                              }),
                 std::runtime_error);
    // Nested calls run inline instead of deadlocking.
    std::atomic<int> inner{0};
    parallel_for(4, 1, [&](std::int64_t, std::int64_t) {
      parallel_for(3, 1, [&](std::int64_t, std::int64_t) { ++inner; });
    });
    EXPECT_EQ(inner.load(), 12);
  }
  set_num_threads(1);
}

}  // namespace
}  // namespace vnp::engine

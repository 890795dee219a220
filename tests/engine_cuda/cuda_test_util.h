#pragma once
// Helpers of the GPU tests: skip without a GPU, fresh random inputs, and error measures.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/ops.h"

namespace vnp::engine::test {

// Every GPU test starts with this: without a usable GPU it skips with the reason.
#define VNP_REQUIRE_GPU()                                                                     \
  do {                                                                                        \
    if (::vnp::engine::cuda::device_count() == 0)                                             \
      GTEST_SKIP() << "no CUDA device (" << ::vnp::engine::cuda::unavailable_reason() << ")"; \
  } while (0)

inline Device gpu() {
  return Device::cuda(0);
}

// A fresh seed per call (inputs differ between runs); the seed is printed when a check fails.
inline std::uint32_t fresh_seed() {
  static std::random_device device;
  return device();
}

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline Tensor random_tensor(Shape shape, std::uint32_t seed, float scale = 1.0f) {
  return Tensor::from_floats(random_floats(static_cast<std::size_t>(shape_numel(shape)), seed, scale), shape);
}

// ||got - want|| / ||want||, both converted to f32 on the host; NaN anywhere gives +inf (never passes).
inline double relative_l2(const Tensor& got, const Tensor& want) {
  const auto g = got.to_floats(), w = want.to_floats();
  EXPECT_EQ(got.shape(), want.shape());
  if (g.size() != w.size()) return INFINITY;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i]) || !std::isfinite(w[i])) return INFINITY;
    num += (static_cast<double>(g[i]) - w[i]) * (static_cast<double>(g[i]) - w[i]);
    den += static_cast<double>(w[i]) * w[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Smallest cosine similarity between corresponding rows of two [n, d] tensors.
inline double min_row_cosine(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  const std::int64_t rows = a.dim(0);
  if (rows == 0 || a.numel() != b.numel()) return -1.0;  // nothing to compare never passes
  const std::int64_t cols = a.numel() / rows;
  double worst = 1.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    double dot = 0, nx = 0, ny = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double p = x[static_cast<std::size_t>(r * cols + c)],
                   q = y[static_cast<std::size_t>(r * cols + c)];
      dot += p * q, nx += p * p, ny += q * q;
    }
    const double cosine = dot / std::sqrt(nx * ny);
    worst = std::isfinite(cosine) ? std::min(worst, cosine) : -1.0;
  }
  return worst;
}

}  // namespace vnp::engine::test

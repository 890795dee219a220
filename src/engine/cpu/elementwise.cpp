// Row-wise and element-wise CPU kernels: layer norm, GELU, gated GELU, rotary. None of them
// reduces across rows, so any split over threads gives the same bits.
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/vector_math.h"
#include "engine/thread_pool.h"

namespace vnp::engine::cpu {
namespace {
constexpr std::int64_t kRowGrain = 16;
constexpr int kLanes = 16;  // independent partial sums: vectorizable, and a fixed summation order

// Sum of x[0..n) in double, accumulated in kLanes lanes (lane l takes elements l, l + kLanes, ...).
VNP_VECTORIZE double lane_sum(const float* x, std::int64_t n, double shift) {
  double lanes[kLanes] = {};
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += static_cast<double>(x[j + l]) - shift;
  double sum = 0.0;
  for (; j < n; ++j) sum += static_cast<double>(x[j]) - shift;
  for (double v : lanes) sum += v;
  return sum;
}

VNP_VECTORIZE double lane_squares(const float* x, std::int64_t n, double mean) {
  double lanes[kLanes] = {};
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      double d = static_cast<double>(x[j + l]) - mean;
      lanes[l] += d * d;
    }
  double sum = 0.0;
  for (; j < n; ++j) sum += (static_cast<double>(x[j]) - mean) * (static_cast<double>(x[j]) - mean);
  for (double v : lanes) sum += v;
  return sum;
}

VNP_VECTORIZE void normalize_row(const float* in, float mean, float rstd, const float* gamma,
                                 const float* beta, std::int64_t n, float* o) {
  for (std::int64_t j = 0; j < n; ++j) o[j] = (in[j] - mean) * rstd * gamma[j] + beta[j];
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float eps, std::int64_t rows,
                std::int64_t cols, float* out) {
  parallel_for(rows, kRowGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const float* in = x + r * cols;
      // Two passes in double: the mean, then the biased variance around it.
      double mean = lane_sum(in, cols, 0.0) / static_cast<double>(cols);
      double variance = lane_squares(in, cols, mean) / static_cast<double>(cols);
      auto rstd = static_cast<float>(1.0 / std::sqrt(variance + static_cast<double>(eps)));
      normalize_row(in, static_cast<float>(mean), rstd, gamma, beta, cols, out + r * cols);
    }
  });
}

float gelu(float x) {
  return gelu_erf(x);
}

VNP_VECTORIZE void gelu(const float* x, std::int64_t n, float* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = gelu_erf(x[i]);
}

namespace {
VNP_VECTORIZE void gated_gelu_row(const float* gated, const float* linear, std::int64_t n, float* o) {
  for (std::int64_t j = 0; j < n; ++j) o[j] = gelu_erf(gated[j]) * linear[j];
}
}  // namespace

void gated_gelu(const float* x, std::int64_t rows, std::int64_t half, float* out) {
  parallel_for(rows, kRowGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const float* gated = x + r * 2 * half;
      const float* linear = gated + half;
      float* o = out + r * half;
      gated_gelu_row(gated, linear, half, o);
    }
  });
}

void rotary(float* x, const float* inv_freq, const std::vector<std::int32_t>& cu_seqlens,
            std::int32_t max_seqlen, int num_heads, std::int64_t head_dim) {
  const std::int64_t half = head_dim / 2;
  // cos/sin tables [position, half], angles computed in double and stored as fp32.
  std::vector<float> cos_table(static_cast<std::size_t>(max_seqlen * half));
  std::vector<float> sin_table(cos_table.size());
  for (std::int64_t t = 0; t < max_seqlen; ++t)
    for (std::int64_t i = 0; i < half; ++i) {
      double angle = static_cast<double>(t) * static_cast<double>(inv_freq[i]);
      cos_table[static_cast<std::size_t>(t * half + i)] = static_cast<float>(std::cos(angle));
      sin_table[static_cast<std::size_t>(t * half + i)] = static_cast<float>(std::sin(angle));
    }
  const std::int64_t width = num_heads * head_dim;
  const auto n_seqs = static_cast<std::int64_t>(cu_seqlens.size()) - 1;
  parallel_for(n_seqs, 1, [&](std::int64_t s_begin, std::int64_t s_end) {
    for (std::int64_t s = s_begin; s < s_end; ++s) {
      std::int64_t first = cu_seqlens[static_cast<std::size_t>(s)];
      std::int64_t last = cu_seqlens[static_cast<std::size_t>(s) + 1];
      for (std::int64_t tok = first; tok < last; ++tok) {
        const float* c = cos_table.data() + (tok - first) * half;
        const float* sn = sin_table.data() + (tok - first) * half;
        for (int h = 0; h < num_heads; ++h) {
          float* lo = x + tok * width + h * head_dim;
          float* hi = lo + half;
          for (std::int64_t i = 0; i < half; ++i) {
            float a = lo[i], b = hi[i];
            lo[i] = a * c[i] - b * sn[i];
            hi[i] = b * c[i] + a * sn[i];
          }
        }
      }
    }
  });
}

}  // namespace vnp::engine::cpu

// Layer norm (fp32 two-pass statistics) and rotary position embedding (fp32 tables).
#include <cuda_runtime.h>

#include <algorithm>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/kernels.h"

namespace vnp::engine::cuda::kernels {
namespace {

constexpr int kNormThreads = 256;

// Mean and 1/sqrt(variance + eps) of a row, in two passes over it (every thread of the block gets them).
template <typename T>
__device__ __forceinline__ float2 row_statistics(const T* row, std::int64_t cols, float eps) {
  // Sums of x - x[0] (a shift inside the row's range): large common offsets cost no digits.
  const float shift = to_f32(row[0]);
  float sum = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += to_f32(row[c]) - shift;
  const float mean = shift + block_sum(sum) / static_cast<float>(cols);
  float sq = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = to_f32(row[c]) - mean;
    sq += d * d;
  }
  const float var = block_sum(sq) / static_cast<float>(cols);
  return make_float2(mean, rsqrtf(var + eps));
}

// One block per row. The row is read three times (mean, variance of x - mean, normalise); after the
// first pass it sits in L1/L2, so DRAM sees one read and one write. Two passes avoid the cancellation
// of the sum-of-squares formula.
template <typename T, bool kF8>
__global__ void __launch_bounds__(kNormThreads)
    layer_norm_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                      const float* __restrict__ beta, std::int64_t cols, float eps, void* __restrict__ out,
                      float* __restrict__ row_scale) {
  const T* row = x + blockIdx.x * cols;
  const float2 statistics = row_statistics(row, cols, eps);
  const float mean = statistics.x, inv_std = statistics.y;
  auto normalised = [&](std::int64_t c) { return (to_f32(row[c]) - mean) * inv_std * gamma[c] + beta[c]; };
  if constexpr (kF8) {
    float amax = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) amax = fmaxf(amax, fabsf(normalised(c)));
    amax = block_max(amax);
    const float inv = e4m3_inverse_scale(amax);
    if (threadIdx.x == 0) row_scale[blockIdx.x] = e4m3_scale(amax);
    std::uint8_t* out_row = static_cast<std::uint8_t*>(out) + blockIdx.x * cols;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) out_row[c] = to_e4m3(normalised(c) * inv);
  } else {
    T* out_row = static_cast<T*>(out) + blockIdx.x * cols;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) out_row[c] = from_f32<T>(normalised(c));
  }
}

// The same statistics, then the normalised row quantised in 1×128 runs (quantize_row_1x128).
template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    layer_norm_1x128_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                            const float* __restrict__ beta, std::int64_t rows, std::int64_t cols, float eps,
                            std::uint8_t* __restrict__ out, float* __restrict__ scale) {
  const T* row = x + blockIdx.x * cols;
  const float2 statistics = row_statistics(row, cols, eps);
  const float mean = statistics.x, inv_std = statistics.y;
  quantize_row_1x128([&](std::int64_t c) { return (to_f32(row[c]) - mean) * inv_std * gamma[c] + beta[c]; },
                     blockIdx.x, rows, cols, out + blockIdx.x * cols, scale);
}

// The fast path: each thread holds its 16-byte chunks of the row in registers (at most kChunks of them),
// so the row is read from memory once; statistics as above, from the registers.
template <typename T, int kChunks, bool kF8>
__global__ void __launch_bounds__(kNormThreads)
    layer_norm_vec_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                          const float* __restrict__ beta, int cols, float eps, void* __restrict__ out,
                          float* __restrict__ row_scale) {
  constexpr int V = 16 / sizeof(T);
  const int chunks = cols / V;
  const auto* row = reinterpret_cast<const Pack<T, V>*>(x + blockIdx.x * std::int64_t{cols});
  const float shift = to_f32(x[blockIdx.x * std::int64_t{cols}]);
  float v[kChunks][V];
  float sum = 0.0f;
  load_row_chunks(row, chunks, v, [&](float value, int) {
    sum += value - shift;
    return value;
  });
  const float mean = shift + block_sum(sum) / static_cast<float>(cols);
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    if (threadIdx.x + j * blockDim.x >= chunks) break;
#pragma unroll
    for (int e = 0; e < V; ++e) sq += (v[j][e] - mean) * (v[j][e] - mean);
  }
  const float inv_std = rsqrtf(block_sum(sq) / static_cast<float>(cols) + eps);
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= chunks) break;
#pragma unroll
    for (int e = 0; e < V; e += 4) {
      const float4 g = reinterpret_cast<const float4*>(gamma + c * V)[e / 4];
      const float4 b = reinterpret_cast<const float4*>(beta + c * V)[e / 4];
      v[j][e + 0] = (v[j][e + 0] - mean) * inv_std * g.x + b.x;
      v[j][e + 1] = (v[j][e + 1] - mean) * inv_std * g.y + b.y;
      v[j][e + 2] = (v[j][e + 2] - mean) * inv_std * g.z + b.z;
      v[j][e + 3] = (v[j][e + 3] - mean) * inv_std * g.w + b.w;
    }
    if constexpr (kF8) {
#pragma unroll
      for (int e = 0; e < V; ++e) amax = fmaxf(amax, fabsf(v[j][e]));
    }
  }
  float inv = 1.0f;
  if constexpr (kF8) {
    amax = block_max(amax);
    inv = e4m3_inverse_scale(amax);
    if (threadIdx.x == 0) row_scale[blockIdx.x] = e4m3_scale(amax);
  }
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= chunks) break;
    if constexpr (kF8) {
      Pack<std::uint8_t, V> q;
#pragma unroll
      for (int e = 0; e < V; ++e) q.v[e] = to_e4m3(v[j][e] * inv);
      reinterpret_cast<Pack<std::uint8_t, V>*>(static_cast<std::uint8_t*>(out) +
                                               blockIdx.x * std::int64_t{cols})[c] = q;
    } else {
      Pack<T, V> p;
#pragma unroll
      for (int e = 0; e < V; ++e) p.v[e] = from_f32<T>(v[j][e]);
      reinterpret_cast<Pack<T, V>*>(static_cast<T*>(out) + blockIdx.x * std::int64_t{cols})[c] = p;
    }
  }
}

// The rotary kernels run one block per token: the block finds the token's position in its sequence (the
// last sequence whose start is <= token, by binary search over cu_seqlens) and builds that position's
// table in shared memory, table[i] = cos and table[half + i] = sin of position · inv_freq[i] (fp32,
// precise sincosf).
__device__ __forceinline__ void rotary_table_of_token(float* table, std::int64_t token, int half,
                                                      const float* __restrict__ inv_freq,
                                                      const std::int32_t* __restrict__ cu, int num_seqs) {
  __shared__ int position;
  if (threadIdx.x == 0) {
    int lo = 0, hi = num_seqs - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (cu[mid] <= token)
        lo = mid;
      else
        hi = mid - 1;
    }
    position = static_cast<int>(token - cu[lo]);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float2 cs = rotary_cos_sin(position, inv_freq[i]);
    table[i] = cs.x;
    table[half + i] = cs.y;
  }
  __syncthreads();
}

// Rotary, vectorised: each thread rotates 4 consecutive pairs (i .. i+3 with i+half .. i+half+3).
template <typename T>
__global__ void rotary_vec_kernel(T* __restrict__ x, int heads, int head_dim,
                                  const float* __restrict__ inv_freq, const std::int32_t* __restrict__ cu,
                                  int num_seqs) {
  extern __shared__ float table[];  // cos[half], sin[half]
  const std::int64_t token = blockIdx.x;
  const int half = head_dim / 2, quads = half / 4;
  rotary_table_of_token(table, token, half, inv_freq, cu, num_seqs);
  T* row = x + token * heads * head_dim;
  for (int p = threadIdx.x; p < heads * quads; p += blockDim.x) {
    const int h = p / quads, i = (p % quads) * 4;
    auto* lo = reinterpret_cast<Pack<T, 4>*>(row + h * head_dim + i);
    auto* hi = reinterpret_cast<Pack<T, 4>*>(row + h * head_dim + half + i);
    Pack<T, 4> a = *lo, b = *hi;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 r =
          rotate_pair(to_f32(a.v[e]), to_f32(b.v[e]), make_float2(table[i + e], table[half + i + e]));
      a.v[e] = from_f32<T>(r.x);
      b.v[e] = from_f32<T>(r.y);
    }
    *lo = a;
    *hi = b;
  }
}

// Rotary, any head_dim: one pair per thread and step, every head of the token.
template <typename T>
__global__ void rotary_kernel(T* __restrict__ x, int heads, int head_dim, const float* __restrict__ inv_freq,
                              const std::int32_t* __restrict__ cu, int num_seqs) {
  extern __shared__ float table[];  // cos[half], sin[half]
  const std::int64_t token = blockIdx.x;
  const int half = head_dim / 2;
  rotary_table_of_token(table, token, half, inv_freq, cu, num_seqs);
  T* row = x + token * heads * head_dim;
  for (int p = threadIdx.x; p < heads * half; p += blockDim.x) {
    const int h = p / half, i = p % half;
    T* head = row + h * head_dim;
    const float2 r =
        rotate_pair(to_f32(head[i]), to_f32(head[i + half]), make_float2(table[i], table[half + i]));
    head[i] = from_f32<T>(r.x);
    head[i + half] = from_f32<T>(r.y);
  }
}

template <bool kF8>
void launch_layer_norm(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                       std::int64_t cols, float eps, void* out, float* row_scale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = 16 / sizeof(T);
    const std::size_t out_bytes = kF8 ? V : 16;
    const bool vec =
        cols % V == 0 && aligned16(x) && aligned_to(out, out_bytes) && aligned16(gamma) && aligned16(beta);
    const std::int64_t chunks = cols / V;
    // Fewest chunks per thread that fit in one block; threads a multiple of 32 (block_sum).
    for (int k = 1; vec && k <= 4; ++k) {
      const std::int64_t threads = ((chunks + k - 1) / k + 31) / 32 * 32;
      if (threads > kNormThreads) continue;
      auto launch = [&](auto kernel) {
        kernel<<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(
            static_cast<const T*>(x), gamma, beta, static_cast<int>(cols), eps, out, row_scale);
      };
      if (k == 1) launch(layer_norm_vec_kernel<T, 1, kF8>);
      if (k == 2) launch(layer_norm_vec_kernel<T, 2, kF8>);
      if (k == 3) launch(layer_norm_vec_kernel<T, 3, kF8>);
      if (k == 4) launch(layer_norm_vec_kernel<T, 4, kF8>);
      return;
    }
    layer_norm_kernel<T, kF8><<<static_cast<unsigned>(rows), kNormThreads, 0, stream>>>(
        static_cast<const T*>(x), gamma, beta, cols, eps, out, row_scale);
  });
  check_launch("layer_norm_kernel");
}

// (cos, sin) of position · inv_freq[i] for every position below max_len (the rotary kernels' values).
__global__ void rotary_table_kernel(const float* __restrict__ inv_freq, int half, int max_len,
                                    float2* __restrict__ table) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= half * max_len) return;
  table[i] = rotary_cos_sin(i / half, inv_freq[i % half]);
}

}  // namespace

void layer_norm(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                std::int64_t cols, float eps, void* out, cudaStream_t stream) {
  launch_layer_norm<false>(x, dt, gamma, beta, rows, cols, eps, out, nullptr, stream);
}

void layer_norm_f8(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                   std::int64_t cols, float eps, std::uint8_t* out, float* scale, cudaStream_t stream) {
  launch_layer_norm<true>(x, dt, gamma, beta, rows, cols, eps, out, scale, stream);
}

void layer_norm_f8_1x128(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                         std::int64_t cols, float eps, std::uint8_t* out, float* scale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    layer_norm_1x128_kernel<T><<<static_cast<unsigned>(rows), kNormThreads, 0, stream>>>(
        static_cast<const T*>(x), gamma, beta, rows, cols, eps, out, scale);
  });
  check_launch("layer_norm_1x128_kernel");
}

void rotary(void* x, DType dt, std::int64_t tokens, int heads, int head_dim, const float* inv_freq,
            const std::int32_t* cu_seqlens, int num_seqs, cudaStream_t stream) {
  if (tokens == 0) return;
  const std::size_t shared = sizeof(float) * static_cast<std::size_t>(head_dim);
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (head_dim % 8 == 0 && aligned_to(x, 4 * sizeof(T))) {
      const int quads = heads * head_dim / 8;
      const unsigned threads = static_cast<unsigned>(std::min(256, (quads + 31) / 32 * 32));
      rotary_vec_kernel<T><<<static_cast<unsigned>(tokens), threads, shared, stream>>>(
          static_cast<T*>(x), heads, head_dim, inv_freq, cu_seqlens, num_seqs);
      return;
    }
    rotary_kernel<T><<<static_cast<unsigned>(tokens), 256, shared, stream>>>(
        static_cast<T*>(x), heads, head_dim, inv_freq, cu_seqlens, num_seqs);
  });
  check_launch("rotary_kernel");
}

void rotary_table(const float* inv_freq, int half, int max_len, float* table, cudaStream_t stream) {
  const int n = half * max_len;
  if (n == 0) return;
  rotary_table_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
      inv_freq, half, max_len, reinterpret_cast<float2*>(table));
  check_launch("rotary_table_kernel");
}

}  // namespace vnp::engine::cuda::kernels

// Layer norm (fp32 two-pass statistics) and rotary position embedding (fp32 tables).
#include <cuda_runtime.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/kernels.h"

namespace vnp::engine::cuda::kernels {
namespace {

constexpr int kNormThreads = 256;

// One block per row. The row is read three times (mean, variance of x - mean, normalise); after the
// first pass it sits in L1/L2, so DRAM sees one read and one write. Two passes avoid the cancellation
// of the sum-of-squares formula.
template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    layer_norm_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                      const float* __restrict__ beta, std::int64_t cols, float eps, T* __restrict__ out) {
  const T* row = x + blockIdx.x * cols;
  T* out_row = out + blockIdx.x * cols;
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
  const float inv_std = rsqrtf(var + eps);
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out_row[c] = from_f32<T>((to_f32(row[c]) - mean) * inv_std * gamma[c] + beta[c]);
}

// One block per token: the block finds the token's position in its sequence, builds the cos/sin table of
// that position in shared memory (fp32, precise sincosf), then rotates every head.
template <typename T>
__global__ void rotary_kernel(T* __restrict__ x, int heads, int head_dim, const float* __restrict__ inv_freq,
                              const std::int32_t* __restrict__ cu, int num_seqs) {
  extern __shared__ float table[];  // cos[half], sin[half]
  __shared__ int position;
  const std::int64_t token = blockIdx.x;
  const int half = head_dim / 2;
  if (threadIdx.x == 0) {
    // Last sequence whose start is <= token (binary search over cu_seqlens).
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
    const float theta = static_cast<float>(position) * inv_freq[i];
    float s, c;
    sincosf(theta, &s, &c);
    table[i] = c;
    table[half + i] = s;
  }
  __syncthreads();
  T* row = x + token * heads * head_dim;
  for (int p = threadIdx.x; p < heads * half; p += blockDim.x) {
    const int h = p / half, i = p % half;
    T* head = row + h * head_dim;
    const float a = to_f32(head[i]), b = to_f32(head[i + half]);
    const float c = table[i], s = table[half + i];
    head[i] = from_f32<T>(a * c - b * s);
    head[i + half] = from_f32<T>(b * c + a * s);
  }
}

}  // namespace

void layer_norm(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                std::int64_t cols, float eps, void* out, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    layer_norm_kernel<T><<<static_cast<unsigned>(rows), kNormThreads, 0, stream>>>(
        static_cast<const T*>(x), gamma, beta, cols, eps, static_cast<T*>(out));
  });
  check_launch("layer_norm_kernel");
}

void rotary(void* x, DType dt, std::int64_t tokens, int heads, int head_dim, const float* inv_freq,
            const std::int32_t* cu_seqlens, int num_seqs, cudaStream_t stream) {
  if (tokens == 0) return;
  const std::size_t shared = sizeof(float) * static_cast<std::size_t>(head_dim);
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    rotary_kernel<T><<<static_cast<unsigned>(tokens), 256, shared, stream>>>(
        static_cast<T*>(x), heads, head_dim, inv_freq, cu_seqlens, num_seqs);
  });
  check_launch("rotary_kernel");
}

}  // namespace vnp::engine::cuda::kernels

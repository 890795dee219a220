// Per-row fp8 e4m3 quantisation (ops::cast to f8, and the GELU hand-over between the two f8 products of
// a transformer FFN). One block per row: the row is read once into registers where it fits, its
// largest magnitude found with a block reduction, then written as bytes with the row's scale.
#include <cuda_runtime.h>

#include <algorithm>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/kernels.h"

namespace vnp::engine::cuda::kernels {
namespace {

constexpr int kQuantThreads = 256;

template <bool kGelu>
__device__ __forceinline__ float activation(float x) {
  if constexpr (kGelu)
    return gelu_erf_short(x);  // the result is stored in 8 bits
  else
    return x;
}

// Registers path: each thread holds at most kChunks 16-byte chunks of the row.
template <typename T, int kChunks, bool kGelu>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_rows_vec_kernel(const T* __restrict__ x, int cols, std::uint8_t* __restrict__ out,
                             float* __restrict__ scale) {
  constexpr int V = 16 / sizeof(T);
  const int chunks = cols / V;
  const auto* row = reinterpret_cast<const Pack<T, V>*>(x + blockIdx.x * std::int64_t{cols});
  auto* out_row = reinterpret_cast<Pack<std::uint8_t, V>*>(out + blockIdx.x * std::int64_t{cols});
  float v[kChunks][V];
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= chunks) break;
    const Pack<T, V> p = row[c];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      v[j][e] = activation<kGelu>(to_f32(p.v[e]));
      amax = fmaxf(amax, fabsf(v[j][e]));
    }
  }
  amax = block_max(amax);
  const float inv = e4m3_inverse_scale(amax);
  if (threadIdx.x == 0) scale[blockIdx.x] = e4m3_scale(amax);
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= chunks) break;
    Pack<std::uint8_t, V> q;
#pragma unroll
    for (int e = 0; e < V; ++e) q.v[e] = to_e4m3(v[j][e] * inv);
    out_row[c] = q;
  }
}

// Any size: two passes over the row (the second from cache).
template <typename T, bool kGelu>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_rows_kernel(const T* __restrict__ x, std::int64_t cols, std::uint8_t* __restrict__ out,
                         float* __restrict__ scale) {
  const T* row = x + blockIdx.x * cols;
  std::uint8_t* out_row = out + blockIdx.x * cols;
  float amax = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    amax = fmaxf(amax, fabsf(activation<kGelu>(to_f32(row[c]))));
  amax = block_max(amax);
  const float inv = e4m3_inverse_scale(amax);
  if (threadIdx.x == 0) scale[blockIdx.x] = e4m3_scale(amax);
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out_row[c] = to_e4m3(activation<kGelu>(to_f32(row[c])) * inv);
}

template <typename T, bool kGelu>
void launch_quantize(const T* x, std::int64_t rows, std::int64_t cols, std::uint8_t* out, float* scale,
                     cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  const std::int64_t chunks = cols / V;
  const bool vec = cols % V == 0 && aligned16(x) && aligned_to(out, V);
  for (int k = 1; vec && k <= 8; k *= 2) {
    const std::int64_t threads = ((chunks + k - 1) / k + 31) / 32 * 32;
    if (threads > kQuantThreads) continue;
    auto launch = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(
          x, static_cast<int>(cols), out, scale);
    };
    if (k == 1) launch(quantize_rows_vec_kernel<T, 1, kGelu>);
    if (k == 2) launch(quantize_rows_vec_kernel<T, 2, kGelu>);
    if (k == 4) launch(quantize_rows_vec_kernel<T, 4, kGelu>);
    if (k == 8) launch(quantize_rows_vec_kernel<T, 8, kGelu>);
    return;
  }
  quantize_rows_kernel<T, kGelu>
      <<<static_cast<unsigned>(rows), kQuantThreads, 0, stream>>>(x, cols, out, scale);
}

}  // namespace

void quantize_rows(const void* x, DType dt, std::int64_t rows, std::int64_t cols, bool gelu,
                   std::uint8_t* out, float* scale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (gelu)
      launch_quantize<T, true>(static_cast<const T*>(x), rows, cols, out, scale, stream);
    else
      launch_quantize<T, false>(static_cast<const T*>(x), rows, cols, out, scale, stream);
  });
  check_launch("quantize_rows_kernel");
}

}  // namespace vnp::engine::cuda::kernels

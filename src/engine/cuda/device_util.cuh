#pragma once
// Device-side helpers shared by the .cu files: element conversions, dtype dispatch, block reductions.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <stdexcept>

#include "engine/tensor.h"

namespace vnp::engine::cuda {

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Calls fn(T{}) with T the device type of a floating dtype (f32, f16, bf16).
template <typename Fn>
void dispatch_float(DType dt, Fn&& fn) {
  switch (dt) {
    case DType::kF32:
      fn(float{});
      return;
    case DType::kF16:
      fn(__half{});
      return;
    case DType::kBF16:
      fn(__nv_bfloat16{});
      return;
    default:
      throw std::invalid_argument(std::string("CUDA kernels: unsupported dtype ") + dtype_name(dt));
  }
}

__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // partial[] may still be read from a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : 0.0f;
  return warp_sum(v);
}

// Maximum over the whole block, same contract as block_sum.
__device__ __forceinline__ float block_max(float v) {
  __shared__ float partial[32];
  v = warp_max(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : 0.0f;
  return warp_max(v);
}

// fp8 e4m3 with one scale per row (ops::cast to f8): scale = amax / 448, element = e4m3(x · 448 / amax),
// an all-zero row gets scale 1. Round to nearest even, saturating (as engine::float_to_e4m3 on the host).
__device__ __forceinline__ float e4m3_inverse_scale(float amax) {
  return amax > 0.0f ? 448.0f / amax : 1.0f;
}
__device__ __forceinline__ float e4m3_scale(float amax) {
  return amax > 0.0f ? amax / 448.0f : 1.0f;
}
__device__ __forceinline__ std::uint8_t to_e4m3(float x) {
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
}

// fp8 e4m3 with 1×128 block scales (Tensor::F8Scaling::kBlock1x128), the same rule per run of 128
// columns (the last run may be shorter): warp w of the thread block quantises runs w, w + warps, ... of
// row `row`, each lane the columns lane + 32·i of the run (coalesced), from value(column); the run's
// scale goes to scale[run · rows + row] (cuBLASLt's VEC128 layout: rows fastest).
template <typename F>
__device__ __forceinline__ void quantize_row_1x128(F&& value, std::int64_t row, std::int64_t rows,
                                                   std::int64_t cols, std::uint8_t* __restrict__ out_row,
                                                   float* __restrict__ scale) {
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const std::int64_t runs = (cols + 127) / 128;
  for (std::int64_t b = threadIdx.x / 32; b < runs; b += warps) {
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const std::int64_t c = b * 128 + lane + 32 * i;
      v[i] = c < cols ? value(c) : 0.0f;
      amax = fmaxf(amax, fabsf(v[i]));
    }
    amax = warp_max(amax);
    const float inv = e4m3_inverse_scale(amax);
    if (lane == 0) scale[b * rows + row] = e4m3_scale(amax);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const std::int64_t c = b * 128 + lane + 32 * i;
      if (c < cols) out_row[c] = to_e4m3(v[i] * inv);
    }
  }
}

// Rotary embedding, one definition for every kernel that applies it (the separate rotary op and the
// attention kernel that fuses it must agree): (cos, sin) of position · inv_freq in fp32 (precise
// sincosf), and the rotation of the pair (x, y) = (element i, element i + head_dim/2).
__device__ __forceinline__ float2 rotary_cos_sin(int position, float inv_freq) {
  float s, c;
  sincosf(static_cast<float>(position) * inv_freq, &s, &c);
  return make_float2(c, s);
}
__device__ __forceinline__ float2 rotate_pair(float x, float y, float2 cos_sin) {
  return make_float2(x * cos_sin.x - y * cos_sin.y, y * cos_sin.x + x * cos_sin.y);
}

// V elements moved as one aligned access (V·sizeof(T) = 8 or 16 bytes).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// The row-in-registers pattern of the row kernels: this thread's 16-byte chunks of a row (chunk c =
// threadIdx.x + j·blockDim.x, for j < kChunks while c < chunks) go into v[j], each element as f(value,
// column). Slots past the row are left as they were.
template <int kChunks, typename T, int V, typename F>
__device__ __forceinline__ void load_row_chunks(const Pack<T, V>* row, int chunks, float (&v)[kChunks][V],
                                                F&& f) {
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= chunks) break;
    const Pack<T, V> p = row[c];
#pragma unroll
    for (int e = 0; e < V; ++e) v[j][e] = f(to_f32(p.v[e]), c * V + e);
  }
}

inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}
inline bool aligned_to(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

inline unsigned blocks_for(std::int64_t n, int threads) {
  std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 30) ? (1 << 30) : b));
}

}  // namespace vnp::engine::cuda

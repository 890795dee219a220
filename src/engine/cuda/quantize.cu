// fp8 e4m3 with one scale per row: quantisation (ops::cast to f8, and the GELU hand-over between the two
// f8 products of a transformer FFN), and the scaling of an f8 product's raw result by its operands' row
// scales. Quantisation: one block per row, the row read once into registers where it fits, its largest
// magnitude found with a block reduction, then written as bytes with the row's scale.
// With block scales (VIRNUCPRO_FP8_SCALES=block): 1×128 runs of a row (activations, the GELU hand-over)
// and 128×128 tiles (weights, quantised once at load); cuBLASLt applies those scales inside the product.
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
    return gelu_erf(x);
  else
    return x;
}

// The raw result of an f8 product, row r, column c, as the true value (ProductScale in kernels.h).
template <typename T>
struct Unscale {
  const float* row_scale;  // null: the input is already the value
  const float* col_scale;
  float factor;
  const T* bias;  // may be null
  __device__ __forceinline__ float operator()(float raw, std::int64_t r, std::int64_t c) const {
    const float v = row_scale ? raw * row_scale[r] * col_scale[c] * factor : raw;
    return bias ? v + to_f32(bias[c]) : v;
  }
};

// Registers path: each thread holds at most kChunks 16-byte chunks of the row.
template <typename T, int kChunks, bool kGelu>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_rows_vec_kernel(const T* __restrict__ x, int cols, Unscale<T> unscale,
                             std::uint8_t* __restrict__ out, float* __restrict__ scale) {
  constexpr int V = 16 / sizeof(T);
  const int chunks = cols / V;
  const auto* row = reinterpret_cast<const Pack<T, V>*>(x + blockIdx.x * std::int64_t{cols});
  auto* out_row = reinterpret_cast<Pack<std::uint8_t, V>*>(out + blockIdx.x * std::int64_t{cols});
  float v[kChunks][V];
  float amax = 0.0f;
  load_row_chunks(row, chunks, v, [&](float value, int col) {
    const float y = activation<kGelu>(unscale(value, blockIdx.x, col));
    amax = fmaxf(amax, fabsf(y));
    return y;
  });
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
    quantize_rows_kernel(const T* __restrict__ x, std::int64_t cols, Unscale<T> unscale,
                         std::uint8_t* __restrict__ out, float* __restrict__ scale) {
  const T* row = x + blockIdx.x * cols;
  std::uint8_t* out_row = out + blockIdx.x * cols;
  float amax = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    amax = fmaxf(amax, fabsf(activation<kGelu>(unscale(to_f32(row[c]), blockIdx.x, c))));
  amax = block_max(amax);
  const float inv = e4m3_inverse_scale(amax);
  if (threadIdx.x == 0) scale[blockIdx.x] = e4m3_scale(amax);
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out_row[c] = to_e4m3(activation<kGelu>(unscale(to_f32(row[c]), blockIdx.x, c)) * inv);
}

template <typename T, bool kGelu>
void launch_quantize(const T* x, std::int64_t rows, std::int64_t cols, Unscale<T> unscale, std::uint8_t* out,
                     float* scale, cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  const std::int64_t chunks = cols / V;
  const bool vec = cols % V == 0 && aligned16(x) && aligned_to(out, V);
  for (int k = 1; vec && k <= 8; k *= 2) {
    const std::int64_t threads = ((chunks + k - 1) / k + 31) / 32 * 32;
    if (threads > kQuantThreads) continue;
    auto launch = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(
          x, static_cast<int>(cols), unscale, out, scale);
    };
    if (k == 1) launch(quantize_rows_vec_kernel<T, 1, kGelu>);
    if (k == 2) launch(quantize_rows_vec_kernel<T, 2, kGelu>);
    if (k == 4) launch(quantize_rows_vec_kernel<T, 4, kGelu>);
    if (k == 8) launch(quantize_rows_vec_kernel<T, 8, kGelu>);
    return;
  }
  quantize_rows_kernel<T, kGelu>
      <<<static_cast<unsigned>(rows), kQuantThreads, 0, stream>>>(x, cols, unscale, out, scale);
}

// out[r, c] (+)= raw[r, c] · row_scale[r] · col_scale[c] · factor + bias[c], V columns per thread.
template <typename T, int V>
__global__ void scale_product_kernel(const T* __restrict__ raw, std::int64_t rows, std::int64_t cols,
                                     Unscale<T> unscale, T* out, bool accumulate) {
  const std::int64_t packs = rows * cols / V, stride = std::int64_t{gridDim.x} * blockDim.x;
  for (std::int64_t p = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; p < packs; p += stride) {
    const std::int64_t r = p * V / cols, c0 = p * V % cols;
    const Pack<T, V> in = reinterpret_cast<const Pack<T, V>*>(raw)[p];
    Pack<T, V> o = accumulate ? reinterpret_cast<const Pack<T, V>*>(out)[p] : Pack<T, V>{};
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float v = unscale(to_f32(in.v[e]), r, c0 + e);
      o.v[e] = from_f32<T>(accumulate ? to_f32(o.v[e]) + v : v);
    }
    reinterpret_cast<Pack<T, V>*>(out)[p] = o;
  }
}

// 1×128 runs: one block per row, its warps over the row's runs (quantize_row_1x128).
template <typename T, bool kGelu>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_1x128_kernel(const T* __restrict__ x, std::int64_t rows, std::int64_t cols, Unscale<T> unscale,
                          std::uint8_t* __restrict__ out, float* __restrict__ scale) {
  const T* row = x + blockIdx.x * cols;
  quantize_row_1x128(
      [&](std::int64_t c) { return activation<kGelu>(unscale(to_f32(row[c]), blockIdx.x, c)); }, blockIdx.x,
      rows, cols, out + blockIdx.x * cols, scale);
}

// 128×128 tiles: one block per tile (blockIdx.x: tile column, up to the padded row length ld, whose
// padding gets scale 1; blockIdx.y: tile row), two passes over the tile (the second from cache).
template <typename T>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_128x128_kernel(const T* __restrict__ x, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                            std::uint8_t* __restrict__ out, float* __restrict__ scale) {
  const std::int64_t r0 = blockIdx.y * std::int64_t{128}, c0 = blockIdx.x * std::int64_t{128};
  float* tile_scale = scale + blockIdx.y * ld + blockIdx.x;
  if (c0 >= cols) {
    if (threadIdx.x == 0) *tile_scale = 1.0f;
    return;
  }
  const int tile_rows = static_cast<int>(rows - r0 < 128 ? rows - r0 : 128),
            tile_cols = static_cast<int>(cols - c0 < 128 ? cols - c0 : 128);
  float amax = 0.0f;
  for (int i = threadIdx.x; i < tile_rows * 128; i += blockDim.x)
    if (i % 128 < tile_cols) amax = fmaxf(amax, fabsf(to_f32(x[(r0 + i / 128) * cols + c0 + i % 128])));
  amax = block_max(amax);
  const float inv = e4m3_inverse_scale(amax);
  if (threadIdx.x == 0) *tile_scale = e4m3_scale(amax);
  for (int i = threadIdx.x; i < tile_rows * 128; i += blockDim.x)
    if (i % 128 < tile_cols) {
      const std::int64_t at = (r0 + i / 128) * cols + c0 + i % 128;
      out[at] = to_e4m3(to_f32(x[at]) * inv);
    }
}

}  // namespace

void quantize_1x128(const void* x, DType dt, std::int64_t rows, std::int64_t cols, bool gelu,
                    std::uint8_t* out, float* scale, cudaStream_t stream, const ProductScale& product) {
  if (rows == 0 || cols == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const Unscale<T> unscale{product.row_scale, product.col_scale, product.factor,
                             static_cast<const T*>(product.bias)};
    const auto kernel = gelu ? quantize_1x128_kernel<T, true> : quantize_1x128_kernel<T, false>;
    kernel<<<static_cast<unsigned>(rows), kQuantThreads, 0, stream>>>(static_cast<const T*>(x), rows, cols,
                                                                      unscale, out, scale);
  });
  check_launch("quantize_1x128_kernel");
}

void quantize_128x128(const void* x, DType dt, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                      std::uint8_t* out, float* scale, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(static_cast<unsigned>(ld), static_cast<unsigned>((rows + 127) / 128));
    quantize_128x128_kernel<T>
        <<<grid, kQuantThreads, 0, stream>>>(static_cast<const T*>(x), rows, cols, ld, out, scale);
  });
  check_launch("quantize_128x128_kernel");
}

void quantize_rows(const void* x, DType dt, std::int64_t rows, std::int64_t cols, bool gelu,
                   std::uint8_t* out, float* scale, cudaStream_t stream, const ProductScale& product) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const Unscale<T> unscale{product.row_scale, product.col_scale, product.factor,
                             static_cast<const T*>(product.bias)};
    if (gelu)
      launch_quantize<T, true>(static_cast<const T*>(x), rows, cols, unscale, out, scale, stream);
    else
      launch_quantize<T, false>(static_cast<const T*>(x), rows, cols, unscale, out, scale, stream);
  });
  check_launch("quantize_rows_kernel");
}

void scale_product(const void* raw, DType dt, std::int64_t rows, std::int64_t cols,
                   const ProductScale& product, void* out, bool accumulate, cudaStream_t stream) {
  if (rows * cols == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const Unscale<T> unscale{product.row_scale, product.col_scale, product.factor,
                             static_cast<const T*>(product.bias)};
    constexpr int V = 16 / sizeof(T);
    const bool vec = cols % V == 0 && aligned16(raw) && aligned16(out);
    const std::int64_t packs = rows * cols / (vec ? V : 1);
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((packs + 255) / 256, 8192));
    if (vec)
      scale_product_kernel<T, V><<<blocks, 256, 0, stream>>>(static_cast<const T*>(raw), rows, cols, unscale,
                                                             static_cast<T*>(out), accumulate);
    else
      scale_product_kernel<T, 1><<<blocks, 256, 0, stream>>>(static_cast<const T*>(raw), rows, cols, unscale,
                                                             static_cast<T*>(out), accumulate);
  });
  check_launch("scale_product_kernel");
}

}  // namespace vnp::engine::cuda::kernels

// Element-wise kernels: GELU, gated GELU, add, scale, cast, embedding gather, mean pooling, and the
// pad/unpad/softmax helpers of the v1 padded attention path. Where sizes and pointers allow, each
// thread moves 16 bytes at a time (8 halves or 4 floats).
#include <cuda_runtime.h>

#include <cmath>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/kernels.h"

namespace vnp::engine::cuda::kernels {
namespace {

constexpr int kThreads = 256;

// out[i] = op(x[i]) for n elements: V per pack, kUnroll packs per thread in flight at once.
constexpr int kUnroll = 4;

template <typename T, int V, typename Op>
__global__ void unary_kernel(const T* __restrict__ x, T* __restrict__ out, std::int64_t n_packs, Op op) {
  const std::int64_t stride = std::int64_t{gridDim.x} * blockDim.x;
  for (std::int64_t base = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; base < n_packs;
       base += stride * kUnroll) {
    Pack<T, V> p[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < n_packs) p[u] = reinterpret_cast<const Pack<T, V>*>(x)[base + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (base + u * stride >= n_packs) break;
#pragma unroll
      for (int j = 0; j < V; ++j) p[u].v[j] = from_f32<T>(op(to_f32(p[u].v[j])));
      reinterpret_cast<Pack<T, V>*>(out)[base + u * stride] = p[u];
    }
  }
}

// a[i] = op(a[i], b[i]).
template <typename T, int V, typename Op>
__global__ void binary_kernel(T* __restrict__ a, const T* __restrict__ b, std::int64_t n_packs, Op op) {
  const std::int64_t stride = std::int64_t{gridDim.x} * blockDim.x;
  for (std::int64_t base = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; base < n_packs;
       base += stride * kUnroll) {
    Pack<T, V> pa[kUnroll], pb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < n_packs) {
        pa[u] = reinterpret_cast<const Pack<T, V>*>(a)[base + u * stride];
        pb[u] = reinterpret_cast<const Pack<T, V>*>(b)[base + u * stride];
      }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (base + u * stride >= n_packs) break;
#pragma unroll
      for (int j = 0; j < V; ++j) pa[u].v[j] = from_f32<T>(op(to_f32(pa[u].v[j]), to_f32(pb[u].v[j])));
      reinterpret_cast<Pack<T, V>*>(a)[base + u * stride] = pa[u];
    }
  }
}

unsigned grid_for(std::int64_t n) {
  // A grid-stride loop: enough blocks to fill any current GPU many times over.
  std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

template <typename T, typename Op>
void launch_unary(const void* x, void* out, std::int64_t n, Op op, cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  if (n % V == 0 && aligned16(x) && aligned16(out))
    unary_kernel<T, V><<<grid_for(n / V / kUnroll + 1), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(out), n / V, op);
  else
    unary_kernel<T, 1><<<grid_for(n / kUnroll + 1), kThreads, 0, stream>>>(static_cast<const T*>(x),
                                                                           static_cast<T*>(out), n, op);
  check_launch("unary_kernel");
}

template <typename T, typename Op>
void launch_binary(void* a, const void* b, std::int64_t n, Op op, cudaStream_t stream) {
  constexpr int V = 16 / sizeof(T);
  if (n % V == 0 && aligned16(a) && aligned16(b))
    binary_kernel<T, V><<<grid_for(n / V / kUnroll + 1), kThreads, 0, stream>>>(
        static_cast<T*>(a), static_cast<const T*>(b), n / V, op);
  else
    binary_kernel<T, 1><<<grid_for(n / kUnroll + 1), kThreads, 0, stream>>>(static_cast<T*>(a),
                                                                            static_cast<const T*>(b), n, op);
  check_launch("binary_kernel");
}

struct GeluOp {
  __device__ float operator()(float x) const { return gelu_erf(x); }
};
struct ScaleOp {
  float factor;
  __device__ float operator()(float x) const { return x * factor; }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <typename From, typename To>
__global__ void cast_kernel(const From* __restrict__ x, To* __restrict__ out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = from_f32<To>(to_f32(x[i]));
}

template <typename T>
__global__ void gated_gelu_kernel(const T* __restrict__ x, T* __restrict__ out, std::int64_t rows,
                                  std::int64_t f) {
  const std::int64_t n = rows * f;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t r = i / f, c = i % f;
    const T* row = x + r * 2 * f;
    out[i] = from_f32<T>(gelu_erf(to_f32(row[c])) * to_f32(row[f + c]));
  }
}

template <typename T>
__global__ void scale_rows_kernel(T* __restrict__ x, std::int64_t rows, std::int64_t cols,
                                  const float* __restrict__ row_scale) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x)
    x[i] = from_f32<T>(to_f32(x[i]) * row_scale[i / cols]);
}

template <typename T>
__global__ void embedding_kernel(const T* __restrict__ table, std::int64_t vocab, std::int64_t dim,
                                 const std::int32_t* __restrict__ ids, T* __restrict__ out, int* error_flag) {
  const std::int64_t t = blockIdx.x;
  const std::int32_t id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0 && atomicCAS(error_flag, 0, 1) == 0) error_flag[1] = id;  // first bad id
  for (std::int64_t c = threadIdx.x; c < dim; c += blockDim.x)
    out[t * dim + c] = ok ? table[id * dim + c] : from_f32<T>(0.0f);
}

// One block column-slice per output row; each thread sums one column in double.
template <typename T>
__global__ void mean_pool_kernel(const T* __restrict__ x, std::int64_t cols,
                                 const std::int32_t* __restrict__ ranges, float* __restrict__ out) {
  const std::int64_t r = blockIdx.y;
  const std::int64_t c = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  const std::int32_t begin = ranges[2 * r], end = ranges[2 * r + 1];
  double sum = 0.0;
  for (std::int64_t t = begin; t < end; ++t) sum += static_cast<double>(to_f32(x[t * cols + c]));
  out[r * cols + c] = static_cast<float>(sum / static_cast<double>(end - begin));
}

template <typename T>
__global__ void pad_heads_kernel(const T* __restrict__ x, T* __restrict__ padded,
                                 const std::int32_t* __restrict__ cu, int heads, int hd, int T_len,
                                 float fill) {
  // blockIdx.x = (seq · heads + head) · T + t
  const std::int64_t row = blockIdx.x;
  const int t = static_cast<int>(row % T_len);
  const std::int64_t sh = row / T_len;
  const int h = static_cast<int>(sh % heads), s = static_cast<int>(sh / heads);
  const int begin = cu[s], len = cu[s + 1] - begin;
  const std::int64_t ld = std::int64_t{heads} * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x)
    padded[row * hd + d] = t < len ? x[(begin + t) * ld + std::int64_t{h} * hd + d] : from_f32<T>(fill);
}

template <typename T>
__global__ void unpad_heads_kernel(const T* __restrict__ padded, T* __restrict__ x,
                                   const std::int32_t* __restrict__ cu, int heads, int hd, int T_len) {
  const std::int64_t row = blockIdx.x;
  const int t = static_cast<int>(row % T_len);
  const std::int64_t sh = row / T_len;
  const int h = static_cast<int>(sh % heads), s = static_cast<int>(sh / heads);
  const int begin = cu[s], len = cu[s + 1] - begin;
  if (t >= len) return;
  const std::int64_t ld = std::int64_t{heads} * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x)
    x[(begin + t) * ld + std::int64_t{h} * hd + d] = padded[row * hd + d];
}

// One block per score row (seq, head, query i): softmax over keys j < len, zeros for padded keys.
template <typename T>
__global__ void masked_softmax_kernel(const float* __restrict__ scores, T* __restrict__ probs,
                                      const std::int32_t* __restrict__ cu, int heads, int T_len,
                                      const float* __restrict__ alibi) {
  const std::int64_t row = blockIdx.x;
  const int i = static_cast<int>(row % T_len);
  const std::int64_t sh = row / T_len;
  const int h = static_cast<int>(sh % heads), s = static_cast<int>(sh / heads);
  const int len = cu[s + 1] - cu[s];
  const float slope = alibi ? alibi[h] : 0.0f;
  const float* in = scores + row * T_len;
  T* out = probs + row * T_len;
  auto score = [&](int j) { return alibi ? in[j] + slope * -fabsf(static_cast<float>(i - j)) : in[j]; };
  __shared__ float shared_max;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, score(j));
  m = warp_max(m);
  // blockDim.x is 32 (one warp per row): no cross-warp step needed.
  if (threadIdx.x == 0) shared_max = m;
  __syncwarp();
  m = shared_max;
  float sum = 0.0f;
  for (int j = threadIdx.x; j < len; j += blockDim.x) sum += expf(score(j) - m);
  sum = warp_sum(sum);
  const float inv = 1.0f / sum;
  for (int j = threadIdx.x; j < T_len; j += blockDim.x)
    out[j] = from_f32<T>(j < len ? expf(score(j) - m) * inv : 0.0f);
}

}  // namespace

void gelu(const void* x, void* out, DType dt, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) { launch_unary<decltype(tag)>(x, out, n, GeluOp{}, stream); });
}

void add(void* a, const void* b, DType dt, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) { launch_binary<decltype(tag)>(a, b, n, AddOp{}, stream); });
}

void scale(void* x, DType dt, std::int64_t n, float factor, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) { launch_unary<decltype(tag)>(x, x, n, ScaleOp{factor}, stream); });
}

void cast(const void* x, DType from, void* out, DType to, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(from, [&](auto from_tag) {
    dispatch_float(to, [&](auto to_tag) {
      using From = decltype(from_tag);
      using To = decltype(to_tag);
      cast_kernel<From, To>
          <<<grid_for(n), kThreads, 0, stream>>>(static_cast<const From*>(x), static_cast<To*>(out), n);
    });
  });
  check_launch("cast_kernel");
}

void gated_gelu(const void* x, void* out, DType dt, std::int64_t rows, std::int64_t f, cudaStream_t stream) {
  if (rows * f == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    gated_gelu_kernel<T><<<grid_for(rows * f), kThreads, 0, stream>>>(static_cast<const T*>(x),
                                                                      static_cast<T*>(out), rows, f);
  });
  check_launch("gated_gelu_kernel");
}

void scale_rows(void* x, DType dt, std::int64_t rows, std::int64_t cols, const float* row_scale,
                cudaStream_t stream) {
  if (rows * cols == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    scale_rows_kernel<T>
        <<<grid_for(rows * cols), kThreads, 0, stream>>>(static_cast<T*>(x), rows, cols, row_scale);
  });
  check_launch("scale_rows_kernel");
}

void embedding(const void* table, DType dt, std::int64_t vocab, std::int64_t dim, const std::int32_t* ids,
               std::int64_t n, void* out, int* error_flag, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        static_cast<const T*>(table), vocab, dim, ids, static_cast<T*>(out), error_flag);
  });
  check_launch("embedding_kernel");
}

void mean_pool(const void* x, DType dt, std::int64_t cols, const std::int32_t* ranges, std::int64_t n_out,
               float* out, cudaStream_t stream) {
  if (n_out == 0 || cols == 0) return;
  dim3 grid(blocks_for(cols, kThreads), static_cast<unsigned>(n_out));
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    mean_pool_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(x), cols, ranges, out);
  });
  check_launch("mean_pool_kernel");
}

void pad_heads(const void* x, void* padded, DType dt, const std::int32_t* cu_seqlens, int num_seqs, int heads,
               int head_dim, int padded_len, float fill, cudaStream_t stream) {
  const std::int64_t rows = std::int64_t{num_seqs} * heads * padded_len;
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    pad_heads_kernel<T><<<static_cast<unsigned>(rows), 64, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(padded), cu_seqlens, heads, head_dim, padded_len, fill);
  });
  check_launch("pad_heads_kernel");
}

void unpad_heads(const void* padded, void* x, DType dt, const std::int32_t* cu_seqlens, int num_seqs,
                 int heads, int head_dim, int padded_len, cudaStream_t stream) {
  const std::int64_t rows = std::int64_t{num_seqs} * heads * padded_len;
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    unpad_heads_kernel<T><<<static_cast<unsigned>(rows), 64, 0, stream>>>(
        static_cast<const T*>(padded), static_cast<T*>(x), cu_seqlens, heads, head_dim, padded_len);
  });
  check_launch("unpad_heads_kernel");
}

void masked_softmax(const float* scores, void* probs, DType dt, const std::int32_t* cu_seqlens, int num_seqs,
                    int heads, int padded_len, const float* alibi_slopes, cudaStream_t stream) {
  const std::int64_t rows = std::int64_t{num_seqs} * heads * padded_len;
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    masked_softmax_kernel<T><<<static_cast<unsigned>(rows), 32, 0, stream>>>(
        scores, static_cast<T*>(probs), cu_seqlens, heads, padded_len, alibi_slopes);
  });
  check_launch("masked_softmax_kernel");
}

}  // namespace vnp::engine::cuda::kernels

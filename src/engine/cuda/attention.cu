// Varlen attention over packed sequences: every sequence attends to itself only. Three kernels:
//  - flash_short_kernel and flash_kernel: f16/bf16, tensor cores (mma.sync m16n8k16, fp32 accumulation),
//    FlashAttention-2 style online softmax, each warp owning 16 query rows (QueryRows). The short one
//    holds a whole sequence's K and V in shared memory (one CTA per sequence and head); the tiled one
//    streams K/V tiles (one CTA per sequence, head and 64-query tile) and takes any length.
//  - plain_kernel: any dtype (f32 included) and any head_dim; fp32 arithmetic throughout (the exact
//    path for --precision fp32, and the fallback).
// All add the optional ALiBi bias -slope[h]·|i - j| to the scaled scores.
#include <cuda_runtime.h>

#include <cmath>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/kernels.h"

namespace vnp::engine::cuda::kernels {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; src_bytes = 0 fills the destination with zeros (rows past the end).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// d += a·b for one m16n8k16 tile, fp32 accumulators.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats -> one register of two 16-bit values (low = first).
template <typename T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  } else {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
}

// One register of two 16-bit values -> two floats (x = low).
template <typename T>
__device__ __forceinline__ float2 unpack2(std::uint32_t r) {
  if constexpr (std::is_same_v<T, __half>)
    return __half22float2(*reinterpret_cast<const __half2*>(&r));
  else
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&r));
}

template <int HD>
struct FlashConfig {
  static constexpr int kBlockM = 64;                  // queries per CTA (16 per warp)
  static constexpr int kBlockN = HD <= 64 ? 64 : 32;  // keys per tile
  static constexpr int kStride = HD + 8;              // shared row stride (16-byte pad: no bank conflicts)
  static constexpr int kThreads = 128;
};

// Copies rows [row0, row0 + rows) of one head (HD contiguous elements at `base`, row stride ld) into
// shared memory; rows at or past `len` are zero-filled without touching global memory.
template <typename T, int HD>
__device__ __forceinline__ void load_rows(T* dst, const T* base, std::int64_t ld, int row0, int rows,
                                          int len) {
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  constexpr int kStride = FlashConfig<HD>::kStride;
  for (int c = threadIdx.x; c < rows * kChunks; c += blockDim.x) {
    const int r = c / kChunks, cc = c % kChunks;
    const bool valid = row0 + r < len;
    const T* src = base + (valid ? std::int64_t{row0 + r} * ld : 0) + cc * 8;
    cp_async_16(dst + r * kStride + cc * 8, src, valid ? 16 : 0);
  }
}

// (x, y) -> (x·cos - y·sin, y·cos + x·sin) in fp32, as the rotary op computes it.
__device__ __forceinline__ float2 rotate_pair(float x, float y, float2 cs) {
  return make_float2(x * cs.x - y * cs.y, y * cs.x + x * cs.y);
}

// Rows [0, rows) of K into shared memory through registers, rotated on the way (element i pairs with
// i + HD/2; rope: [position][HD/2] (cos, sin)); rows at or past len are zeros. Four 16-byte pairs per
// thread are in flight at once.
template <typename T, int HD>
__device__ __forceinline__ void load_rows_rotated(T* dst, const T* base, std::int64_t ld, int rows, int len,
                                                  const float2* __restrict__ rope) {
  constexpr int kHalf = HD / 2, kV = 8, kPerRow = kHalf / kV, kUnroll = 4;
  constexpr int kStride = FlashConfig<HD>::kStride;
  const int items = rows * kPerRow;
  for (int c0 = threadIdx.x; c0 < items; c0 += kUnroll * blockDim.x) {
    Pack<T, kV> lo[kUnroll], hi[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * blockDim.x, r = c / kPerRow, i = (c % kPerRow) * kV;
      if (c < items && r < len) {
        lo[u] = *reinterpret_cast<const Pack<T, kV>*>(base + std::int64_t{r} * ld + i);
        hi[u] = *reinterpret_cast<const Pack<T, kV>*>(base + std::int64_t{r} * ld + kHalf + i);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * blockDim.x, r = c / kPerRow, i = (c % kPerRow) * kV;
      if (c >= items) break;
      if (r < len) {
        const float4* cs = reinterpret_cast<const float4*>(rope + r * kHalf + i);
#pragma unroll
        for (int e = 0; e < kV; e += 2) {
          const float4 t = cs[e / 2];
          const float2 p0 = rotate_pair(to_f32(lo[u].v[e]), to_f32(hi[u].v[e]), make_float2(t.x, t.y));
          const float2 p1 =
              rotate_pair(to_f32(lo[u].v[e + 1]), to_f32(hi[u].v[e + 1]), make_float2(t.z, t.w));
          lo[u].v[e] = from_f32<T>(p0.x);
          hi[u].v[e] = from_f32<T>(p0.y);
          lo[u].v[e + 1] = from_f32<T>(p1.x);
          hi[u].v[e + 1] = from_f32<T>(p1.y);
        }
      } else {
#pragma unroll
        for (int e = 0; e < kV; ++e) lo[u].v[e] = hi[u].v[e] = from_f32<T>(0.0f);
      }
      *reinterpret_cast<Pack<T, kV>*>(dst + r * kStride + i) = lo[u];
      *reinterpret_cast<Pack<T, kV>*>(dst + r * kStride + kHalf + i) = hi[u];
    }
  }
}

// R blocks of 16 query rows owned by one warp: the online-softmax state and the three steps every key
// tile takes. Taking R = 2 blocks at once halves the shared-memory reads of K and V per query (each
// fragment loaded feeds both blocks' products). Thread (g, t4) of the warp holds rows g and g + 8 of each
// block (mma fragment layout): row(r, h) = first row + 16·r + 8·h.
template <typename T, int HD, int BN, int R>
struct QueryRows {
  static constexpr int KSTEPS = HD / 16;  // k-steps of Q·Kᵀ
  static constexpr int NB = BN / 8;       // 8-key column blocks of S
  static constexpr int DB = HD / 8;       // 8-wide column blocks of O
  static constexpr int LDS = FlashConfig<HD>::kStride;

  std::uint32_t qf[R][KSTEPS][4];
  float o[R][DB][4];
  float m[R][2], l[R][2];
  int row0;

  __device__ __forceinline__ int row(int r, int h) const { return row0 + 16 * r + 8 * h; }

  __device__ __forceinline__ void reset(int first_row, int g) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int i = 0; i < DB; ++i) o[r][i][0] = o[r][i][1] = o[r][i][2] = o[r][i][3] = 0.0f;
      m[r][0] = m[r][1] = -INFINITY;
      l[r][0] = l[r][1] = 0.0f;
    }
    row0 = first_row + g;
  }

  // Q fragments from shared memory (the warp's rows start at sQ).
  __device__ __forceinline__ void load_q_shared(const T* sQ, int lane) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk)
        ldmatrix_x4(qf[r][kk], sQ + (16 * r + lane % 16) * LDS + kk * 16 + (lane / 16) * 8);
  }

  // Q fragments straight from global memory (rows past len are zeros). Register j of a k-step holds
  // row half j % 2 and column block j / 2 (mma A-fragment layout).
  __device__ __forceinline__ void load_q_global(const T* qh, std::int64_t ld, int len, int t4) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int rw = row(r, j % 2);
        const auto* src = reinterpret_cast<const std::uint32_t*>(qh + std::int64_t{rw} * ld);
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk) qf[r][kk][j] = rw < len ? src[kk * 8 + (j / 2) * 4 + t4] : 0u;
      }
  }

  // Rotary on the Q fragments in registers: column c pairs with c + HD/2, which this thread also holds
  // (k-step kk + KSTEPS/2). rope: [position][HD/2] (cos, sin), fp32; rows past len stay zero.
  __device__ __forceinline__ void rotate_q(const float2* __restrict__ rope, int len, int t4) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int rw = row(r, j % 2);
        if (rw >= len) continue;
#pragma unroll
        for (int kk = 0; kk < KSTEPS / 2; ++kk) {
          const int col = kk * 16 + (j / 2) * 8 + 2 * t4;
          const float4 cs = *reinterpret_cast<const float4*>(rope + rw * (HD / 2) + col);
          const float2 lo = unpack2<T>(qf[r][kk][j]), hi = unpack2<T>(qf[r][kk + KSTEPS / 2][j]);
          const float2 p0 = rotate_pair(lo.x, hi.x, make_float2(cs.x, cs.y));
          const float2 p1 = rotate_pair(lo.y, hi.y, make_float2(cs.z, cs.w));
          qf[r][kk][j] = pack2<T>(p0.x, p1.x);
          qf[r][kk + KSTEPS / 2][j] = pack2<T>(p0.y, p1.y);
        }
      }
  }

  // Folds keys [k0, k0 + BN) (rows of sK/sV; keys >= len masked) into the state.
  __device__ __forceinline__ void key_tile(const T* sK, const T* sV, int k0, int len, float scale_log2,
                                           float slope_log2, bool alibi, int lane) {
    const int t4 = lane % 4;
    // S = Q·Kᵀ: each K fragment feeds all R blocks.
    float s[R][NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
      for (int r = 0; r < R; ++r) s[r][nb][0] = s[r][nb][1] = s[r][nb][2] = s[r][nb][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk += 2) {
        std::uint32_t b[4];
        ldmatrix_x4(b, sK + (nb * 8 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          mma_16816<T>(s[r][nb], qf[r][kk], b[0], b[1]);
          mma_16816<T>(s[r][nb], qf[r][kk + 1], b[2], b[3]);
        }
      }
    }

    const bool tail = k0 + BN > len;  // warp-uniform: only the last tile has masked keys
#pragma unroll
    for (int r = 0; r < R; ++r) {
      // Scale (log2 domain), bias, mask; row maxima over the 4 threads sharing a row.
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + nb * 8 + 2 * t4 + (e & 1);
          float x = s[r][nb][e] * scale_log2;
          if (alibi) x -= slope_log2 * fabsf(static_cast<float>(row(r, e / 2) - key));
          if (tail && key >= len) x = -INFINITY;
          s[r][nb][e] = x;
          tile_max[e / 2] = fmaxf(tile_max[e / 2], x);
        }
      float use[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        for (int off = 1; off <= 2; off <<= 1)
          tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], off));
        const float new_max = fmaxf(m[r][h], tile_max[h]);
        // Rows with every key masked so far keep a finite reference (no -inf - -inf).
        use[h] = new_max == -INFINITY ? 0.0f : new_max;
        const float corr = exp2f(m[r][h] - use[h]);
        m[r][h] = new_max;
        l[r][h] *= corr;  // per-thread partial sums; the 4 partials are added at the end
#pragma unroll
        for (int db = 0; db < DB; ++db) {
          o[r][db][2 * h] *= corr;
          o[r][db][2 * h + 1] *= corr;
        }
      }
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[r][nb][e] = exp2f(s[r][nb][e] - use[e / 2]);
          l[r][e / 2] += s[r][nb][e];
        }
    }

    // O += P·V: P (the S accumulators, rounded to T) is the A operand; each V fragment (read transposed)
    // feeds all R blocks.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t a[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        a[r][0] = pack2<T>(s[r][2 * kk][0], s[r][2 * kk][1]);
        a[r][1] = pack2<T>(s[r][2 * kk][2], s[r][2 * kk][3]);
        a[r][2] = pack2<T>(s[r][2 * kk + 1][0], s[r][2 * kk + 1][1]);
        a[r][3] = pack2<T>(s[r][2 * kk + 1][2], s[r][2 * kk + 1][3]);
      }
#pragma unroll
      for (int db = 0; db < DB; db += 2) {
        std::uint32_t b[4];
        ldmatrix_x4_trans(b,
                          sV + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + db * 8 + (lane / 16) * 8);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          mma_16816<T>(o[r][db], a[r], b[0], b[1]);
          mma_16816<T>(o[r][db + 1], a[r], b[2], b[3]);
        }
      }
    }
  }

  // O / l for the rows that exist.
  __device__ __forceinline__ void store(T* oh, std::int64_t ld, int len, int t4) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float sum = l[r][h];
        for (int off = 1; off <= 2; off <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        const int rw = row(r, h);
        if (rw >= len) continue;
        const float inv = 1.0f / sum;
#pragma unroll
        for (int db = 0; db < DB; ++db)
          *reinterpret_cast<std::uint32_t*>(oh + std::int64_t{rw} * ld + db * 8 + 2 * t4) =
              pack2<T>(o[r][db][2 * h] * inv, o[r][db][2 * h + 1] * inv);
      }
  }
};

// Tiled kernel (any length): one CTA of 4 warps per (sequence, head, 64-query tile), each warp owning 16
// query rows; K/V tiles streamed through shared memory, double-buffered with cp.async.
template <typename T, int HD>
__global__ void __launch_bounds__(128)
    flash_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                 T* __restrict__ out, const std::int32_t* __restrict__ cu, int tiles_per_seq, int heads,
                 float scale_log2, const float* __restrict__ alibi) {
  using Cfg = FlashConfig<HD>;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, LDS = Cfg::kStride;
  // Dynamic shared memory: Q, then two K and two V buffers (the next tile loads while this one computes).
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* const sQ = reinterpret_cast<T*>(shared_bytes);
  T* const sK0 = sQ + BM * LDS;
  T* const sV0 = sK0 + 2 * BN * LDS;

  const int seq = blockIdx.x / tiles_per_seq, tile = blockIdx.x % tiles_per_seq, head = blockIdx.y;
  const int begin = cu[seq], len = cu[seq + 1] - begin;
  const int q0 = tile * BM;
  if (q0 >= len) return;
  const std::int64_t ld = std::int64_t{heads} * HD;
  const std::int64_t head_offset = std::int64_t{begin} * ld + std::int64_t{head} * HD;
  const T* kh = k + head_offset;
  const T* vh = v + head_offset;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float slope_log2 = alibi ? alibi[head] * kLog2e : 0.0f;
  QueryRows<T, HD, BN, 1> rows;
  rows.reset(q0 + warp * 16, lane / 4);

  load_rows<T, HD>(sQ, q + head_offset, ld, q0, BM, len);
  load_rows<T, HD>(sK0, kh, ld, 0, BN, len);
  load_rows<T, HD>(sV0, vh, ld, 0, BN, len);
  cp_async_commit();
  const int num_tiles = (len + BN - 1) / BN;
  for (int t = 0; t < num_tiles; ++t) {
    const int k0 = t * BN;
    const T* sK = sK0 + (t & 1) * BN * LDS;
    const T* sV = sV0 + (t & 1) * BN * LDS;
    if (t + 1 < num_tiles) {  // prefetch the next tile into the other buffers
      load_rows<T, HD>(sK0 + ((t + 1) & 1) * BN * LDS, kh, ld, k0 + BN, BN, len);
      load_rows<T, HD>(sV0 + ((t + 1) & 1) * BN * LDS, vh, ld, k0 + BN, BN, len);
      cp_async_commit();
      cp_async_wait<1>();  // this tile (and Q) are in
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (t == 0) rows.load_q_shared(sQ + warp * 16 * LDS, lane);
    rows.key_tile(sK, sV, k0, len, scale_log2, slope_log2, alibi != nullptr, lane);
    __syncthreads();  // this tile's buffers are reloaded two iterations on
  }
  rows.store(out + head_offset, ld, len, lane % 4);
}

// Short-sequence kernel (head_dim 64, sequences of at most kShortMaxLen tokens, ESM-2's and DNABERT-S's
// usual case): one CTA per (sequence, head). The whole of K and V is loaded into shared memory once (the
// tiled kernel loads it once per 64-query tile; K is rotated on the way when rope is given), Q fragments
// come straight from global memory, and each warp takes 32-row pairs of blocks in turn. The launch sizes
// the CTA (at most 4 warps) so that the pairs of the longest sequence divide evenly.
constexpr int kShortMaxLen = 256;
constexpr int kShortKeys = 32;  // keys per tile (two row blocks' scores stay in registers)
constexpr int kShortRows = 32;  // query rows per warp and pass (QueryRows with R = 2)

template <typename T, int HD>
__global__ void __launch_bounds__(128, 3)
    flash_short_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       T* __restrict__ out, const std::int32_t* __restrict__ cu, int heads, float scale_log2,
                       const float* __restrict__ alibi, const float2* __restrict__ rope) {
  constexpr int BN = kShortKeys, LDS = FlashConfig<HD>::kStride;
  const int seq = blockIdx.x, head = blockIdx.y;
  const int begin = cu[seq], len = cu[seq + 1] - begin;
  if (len == 0) return;
  const int num_tiles = (len + BN - 1) / BN;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* const sK = reinterpret_cast<T*>(shared_bytes);
  T* const sV = sK + num_tiles * BN * LDS;

  const std::int64_t ld = std::int64_t{heads} * HD;
  const std::int64_t head_offset = std::int64_t{begin} * ld + std::int64_t{head} * HD;
  load_rows<T, HD>(sV, v + head_offset, ld, 0, num_tiles * BN, len);
  cp_async_commit();
  if (rope)
    load_rows_rotated<T, HD>(sK, k + head_offset, ld, num_tiles * BN, len, rope);
  else
    load_rows<T, HD>(sK, k + head_offset, ld, 0, num_tiles * BN, len);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const float slope_log2 = alibi ? alibi[head] * kLog2e : 0.0f;
  QueryRows<T, HD, BN, 2> rows;
  auto load_q = [&](int r0) {
    rows.reset(r0, lane / 4);
    rows.load_q_global(q + head_offset, ld, len, lane % 4);
    if (rope) rows.rotate_q(rope, len, lane % 4);
  };
  const int first_row = warp * kShortRows;
  if (first_row < len) load_q(first_row);  // in flight while K and V land
  cp_async_wait<0>();
  __syncthreads();
  for (int r0 = first_row; r0 < len; r0 += warps * kShortRows) {
    if (r0 != first_row) load_q(r0);
    for (int t = 0; t < num_tiles; ++t)
      rows.key_tile(sK + t * BN * LDS, sV + t * BN * LDS, t * BN, len, scale_log2, slope_log2,
                    alibi != nullptr, lane);
    rows.store(out + head_offset, ld, len, lane % 4);
  }
}

template <typename T, int HD>
void launch_flash(const AttentionArgs& a, cudaStream_t stream) {
  using Cfg = FlashConfig<HD>;
  const int tiles = (a.max_seqlen + Cfg::kBlockM - 1) / Cfg::kBlockM;
  dim3 grid(static_cast<unsigned>(a.num_seqs) * static_cast<unsigned>(tiles), static_cast<unsigned>(a.heads));
  const std::size_t shared =
      sizeof(T) * static_cast<std::size_t>((Cfg::kBlockM + 4 * Cfg::kBlockN) * Cfg::kStride);
  // More than 48 KB for head_dim 128 (set on every launch: the attribute belongs to the current device).
  check(cudaFuncSetAttribute(flash_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared)),
        "cudaFuncSetAttribute(flash attention)");
  flash_kernel<T, HD><<<grid, Cfg::kThreads, shared, stream>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<T*>(a.out), a.cu_seqlens, tiles, a.heads, a.softmax_scale * kLog2e, a.alibi_slopes);
  check_launch("flash_kernel");
}

// ---------------------------------------------------------------------------------------------
// Plain kernel: fp32 arithmetic, any head_dim

template <typename T, int HD>
void launch_short(const AttentionArgs& a, cudaStream_t stream) {
  const int tiles = (a.max_seqlen + kShortKeys - 1) / kShortKeys;
  const std::size_t shared =
      sizeof(T) * static_cast<std::size_t>(2 * tiles * kShortKeys * FlashConfig<HD>::kStride);
  check(cudaFuncSetAttribute(flash_short_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared)),
        "cudaFuncSetAttribute(short attention)");
  // As many warps as make the longest sequence's row pairs come out even (e.g. 6 pairs: 3 warps of 2).
  const int pairs = (a.max_seqlen + kShortRows - 1) / kShortRows;
  const int per_warp = (pairs + 3) / 4, warps = (pairs + per_warp - 1) / per_warp;
  dim3 grid(static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(a.heads));
  flash_short_kernel<T, HD><<<grid, static_cast<unsigned>(32 * warps), shared, stream>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<T*>(a.out), a.cu_seqlens, a.heads, a.softmax_scale * kLog2e, a.alibi_slopes,
      reinterpret_cast<const float2*>(a.rope));
  check_launch("flash_short_kernel");
}

// ---------------------------------------------------------------------------------------------
// Plain kernel: fp32 arithmetic, any head_dim
// ---------------------------------------------------------------------------------------------

constexpr int kPlainQueries = 16;  // per CTA: 4 warps x 4 queries
constexpr int kPlainKeys = 32;     // keys per tile: one per lane

// Shared memory (floats): Q [16][hd], O [16][hd], K [32][hd + 1] (padded: lane j reads row j), V [32][hd],
// P [4 warps][32].
std::size_t plain_shared_bytes(int hd) {
  return sizeof(float) * static_cast<std::size_t>(2 * kPlainQueries * hd + kPlainKeys * (hd + 1) +
                                                  kPlainKeys * hd + 4 * kPlainKeys);
}

template <typename T>
__global__ void __launch_bounds__(128)
    plain_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                 T* __restrict__ out, const std::int32_t* __restrict__ cu, int tiles_per_seq, int heads,
                 int hd, float scale, const float* __restrict__ alibi) {
  extern __shared__ float smem[];
  float* sQ = smem;
  float* sO = sQ + kPlainQueries * hd;
  float* sK = sO + kPlainQueries * hd;
  float* sV = sK + kPlainKeys * (hd + 1);
  float* sP = sV + kPlainKeys * hd;

  const int seq = blockIdx.x / tiles_per_seq, tile = blockIdx.x % tiles_per_seq, head = blockIdx.y;
  const int begin = cu[seq], len = cu[seq + 1] - begin;
  const int q0 = tile * kPlainQueries;
  if (q0 >= len) return;
  const std::int64_t ld = std::int64_t{heads} * hd;
  const std::int64_t head_offset = std::int64_t{begin} * ld + std::int64_t{head} * hd;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float slope = alibi ? alibi[head] : 0.0f;

  for (int i = threadIdx.x; i < kPlainQueries * hd; i += blockDim.x) {
    const int r = i / hd, d = i % hd;
    sQ[i] = q0 + r < len ? to_f32(q[head_offset + std::int64_t{q0 + r} * ld + d]) : 0.0f;
    sO[i] = 0.0f;
  }
  float m[4], l[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) m[j] = -INFINITY, l[j] = 0.0f;

  for (int k0 = 0; k0 < len; k0 += kPlainKeys) {
    __syncthreads();
    for (int i = threadIdx.x; i < kPlainKeys * hd; i += blockDim.x) {
      const int r = i / hd, d = i % hd;
      const bool valid = k0 + r < len;
      const std::int64_t at = head_offset + std::int64_t{k0 + r} * ld + d;
      sK[r * (hd + 1) + d] = valid ? to_f32(k[at]) : 0.0f;
      sV[r * hd + d] = valid ? to_f32(v[at]) : 0.0f;
    }
    __syncthreads();
    const int key = k0 + lane;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = warp * 4 + j, query = q0 + r;
      if (query >= len) break;  // warp-uniform
      float s = -INFINITY;
      if (key < len) {
        float dot = 0.0f;
        for (int d = 0; d < hd; ++d) dot = fmaf(sQ[r * hd + d], sK[lane * (hd + 1) + d], dot);
        s = dot * scale;
        if (alibi) s += slope * -fabsf(static_cast<float>(query - key));
      }
      const float m_new = fmaxf(m[j], warp_max(s));  // finite: key k0 < len always exists
      const float p = expf(s - m_new);
      const float corr = expf(m[j] - m_new);
      l[j] = l[j] * corr + warp_sum(p);
      m[j] = m_new;
      sP[warp * kPlainKeys + lane] = p;
      __syncwarp();
      for (int d = lane; d < hd; d += 32) {
        float acc = sO[r * hd + d] * corr;
        for (int kk = 0; kk < kPlainKeys; ++kk) acc = fmaf(sP[warp * kPlainKeys + kk], sV[kk * hd + d], acc);
        sO[r * hd + d] = acc;
      }
      __syncwarp();
    }
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int r = warp * 4 + j, query = q0 + r;
    if (query >= len) break;
    for (int d = lane; d < hd; d += 32)
      out[head_offset + std::int64_t{query} * ld + d] = from_f32<T>(sO[r * hd + d] / l[j]);
  }
}

void launch_plain(const AttentionArgs& a, cudaStream_t stream) {
  const int tiles = (a.max_seqlen + kPlainQueries - 1) / kPlainQueries;
  dim3 grid(static_cast<unsigned>(a.num_seqs) * static_cast<unsigned>(tiles), static_cast<unsigned>(a.heads));
  const std::size_t shared = plain_shared_bytes(a.head_dim);
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    if (shared > 48 * 1024)
      check(cudaFuncSetAttribute(plain_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(shared)),
            "cudaFuncSetAttribute(plain attention)");
    plain_kernel<T><<<grid, 128, shared, stream>>>(
        static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
        static_cast<T*>(a.out), a.cu_seqlens, tiles, a.heads, a.head_dim, a.softmax_scale, a.alibi_slopes);
  });
  check_launch("plain attention kernel");
}

}  // namespace

AttentionKernel attention_kernel_for(const AttentionArgs& a) {
  const bool half_type = a.dt == DType::kF16 || a.dt == DType::kBF16;
  const bool shape = a.head_dim == 64 || a.head_dim == 128;
  if (!half_type || !shape || !aligned16(a.q) || !aligned16(a.k) || !aligned16(a.v) || !aligned16(a.out))
    return AttentionKernel::kPlain;
  return a.head_dim == 64 && a.max_seqlen <= kShortMaxLen ? AttentionKernel::kShort : AttentionKernel::kTiled;
}

void attention_varlen_with(AttentionKernel kernel, const AttentionArgs& a, cudaStream_t stream) {
  if (a.num_seqs == 0 || a.max_seqlen == 0) return;
  if (a.rope && kernel != AttentionKernel::kShort)
    throw std::invalid_argument("attention: only the short kernel applies rotary itself");
  if (kernel == AttentionKernel::kPlain) return launch_plain(a, stream);
  if (attention_kernel_for(a) == AttentionKernel::kPlain ||
      (kernel == AttentionKernel::kShort && (a.head_dim != 64 || a.max_seqlen > kShortMaxLen)))
    throw std::invalid_argument("attention: this kernel cannot take these arguments");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (kernel == AttentionKernel::kShort) return launch_short<T, 64>(a, stream);
    if (a.head_dim == 64) return launch_flash<T, 64>(a, stream);
    launch_flash<T, 128>(a, stream);
  };
  if (a.dt == DType::kF16)
    run(__half{});
  else
    run(__nv_bfloat16{});
}

void attention_varlen(const AttentionArgs& a, cudaStream_t stream) {
  attention_varlen_with(attention_kernel_for(a), a, stream);
}

}  // namespace vnp::engine::cuda::kernels

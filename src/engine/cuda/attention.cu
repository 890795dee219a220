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

// Rotary on rows [0, len) of K in shared memory (row stride LDS): element i pairs with i + HD/2, as the
// rotary op does (rotate_pair in fp32, rounded to T).
template <typename T, int HD, int LDS>
__device__ __forceinline__ void rotate_rows(T* sK, const float2* __restrict__ rope, int len) {
  constexpr int kHalf = HD / 2, kV = 8, kPerRow = kHalf / kV;
  for (int c = threadIdx.x; c < len * kPerRow; c += blockDim.x) {
    const int r = c / kPerRow, i = (c % kPerRow) * kV;
    auto* lo = reinterpret_cast<Pack<T, kV>*>(sK + r * LDS + i);
    auto* hi = reinterpret_cast<Pack<T, kV>*>(sK + r * LDS + kHalf + i);
    Pack<T, kV> a = *lo, b = *hi;
    const auto* cs = reinterpret_cast<const float4*>(rope + r * kHalf + i);  // two (cos, sin) pairs a load
#pragma unroll
    for (int e = 0; e < kV; e += 2) {
      const float4 t = cs[e / 2];
      const float2 r0 = rotate_pair(to_f32(a.v[e]), to_f32(b.v[e]), make_float2(t.x, t.y));
      const float2 r1 = rotate_pair(to_f32(a.v[e + 1]), to_f32(b.v[e + 1]), make_float2(t.z, t.w));
      a.v[e] = from_f32<T>(r0.x);
      b.v[e] = from_f32<T>(r0.y);
      a.v[e + 1] = from_f32<T>(r1.x);
      b.v[e + 1] = from_f32<T>(r1.y);
    }
    *lo = a;
    *hi = b;
  }
}

// Where a CTA's work lies: grid x = sequence · tiles_per_seq + query tile, grid y = head. q, k, v and out are
// packed [tokens, heads · hd]; offset is the element offset of (the sequence's first token, this head).
struct HeadSlice {
  int head, tile, len;
  std::int64_t ld, offset;
};
__device__ __forceinline__ HeadSlice head_slice(const std::int32_t* cu, int tiles_per_seq, int heads,
                                                int hd) {
  const int seq = blockIdx.x / tiles_per_seq, begin = cu[seq];
  HeadSlice h;
  h.head = blockIdx.y;
  h.tile = blockIdx.x % tiles_per_seq;
  h.len = cu[seq + 1] - begin;
  h.ld = std::int64_t{heads} * hd;
  h.offset = std::int64_t{begin} * h.ld + std::int64_t{h.head} * hd;
  return h;
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

// One warp's 16 query rows: the online-softmax state and the three steps every key tile takes.
// Thread (g, t4) of the warp holds rows a = g and b = g + 8 of the block (mma fragment layout).
template <typename T, int HD, int BN>
struct QueryRows {
  static constexpr int KSTEPS = HD / 16;  // k-steps of Q·Kᵀ
  static constexpr int NB = BN / 8;       // 8-key column blocks of S
  static constexpr int DB = HD / 8;       // 8-wide column blocks of O
  static constexpr int LDS = FlashConfig<HD>::kStride;

  std::uint32_t qf[KSTEPS][4];
  float o[DB][4];
  float m_a, m_b, l_a, l_b;
  int row_a, row_b;  // query positions in the sequence

  __device__ __forceinline__ void reset(int first_row, int g) {
#pragma unroll
    for (int i = 0; i < DB; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    m_a = m_b = -INFINITY;
    l_a = l_b = 0.0f;
    row_a = first_row + g;
    row_b = row_a + 8;
  }

  // Q fragments from shared memory (the warp's 16 rows start at sQ).
  __device__ __forceinline__ void load_q_shared(const T* sQ, int lane) {
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk)
      ldmatrix_x4(qf[kk], sQ + (lane % 16) * LDS + kk * 16 + (lane / 16) * 8);
  }

  // Q fragments straight from global memory (rows past len are zeros).
  __device__ __forceinline__ void load_q_global(const T* qh, std::int64_t ld, int len, int t4) {
    const auto* ra = reinterpret_cast<const std::uint32_t*>(qh + std::int64_t{row_a} * ld);
    const auto* rb = reinterpret_cast<const std::uint32_t*>(qh + std::int64_t{row_b} * ld);
    const bool va = row_a < len, vb = row_b < len;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      const int c = kk * 8 + t4;  // in 32-bit words: columns kk·16 + 2·t4 and + 8
      qf[kk][0] = va ? ra[c] : 0u;
      qf[kk][1] = vb ? rb[c] : 0u;
      qf[kk][2] = va ? ra[c + 4] : 0u;
      qf[kk][3] = vb ? rb[c + 4] : 0u;
    }
  }

  // Rotary on the Q fragments in registers: column c pairs with c + HD/2, which this thread also holds
  // (k-step kk + KSTEPS/2). rope: [position][HD/2] (cos, sin), fp32; rows past len stay zero.
  __device__ __forceinline__ void rotate_q(const float2* __restrict__ rope, int len, int t4) {
#pragma unroll
    for (int kk = 0; kk < KSTEPS / 2; ++kk) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int row = (j & 1) ? row_b : row_a, col = kk * 16 + (j >= 2 ? 8 : 0) + 2 * t4;
        if (row >= len) continue;
        const float2 lo = unpack2<T>(qf[kk][j]), hi = unpack2<T>(qf[kk + KSTEPS / 2][j]);
        const float4 cs = *reinterpret_cast<const float4*>(rope + row * (HD / 2) + col);  // col is even
        const float2 r0 = rotate_pair(lo.x, hi.x, make_float2(cs.x, cs.y));
        const float2 r1 = rotate_pair(lo.y, hi.y, make_float2(cs.z, cs.w));
        qf[kk][j] = pack2<T>(r0.x, r1.x);
        qf[kk + KSTEPS / 2][j] = pack2<T>(r0.y, r1.y);
      }
    }
  }

  // Folds keys [k0, k0 + BN) (rows of sK/sV; keys >= len masked) into the state.
  __device__ __forceinline__ void key_tile(const T* sK, const T* sV, int k0, int len, float scale_log2,
                                           float slope_log2, bool alibi, int lane) {
    const int t4 = lane % 4;
    // S = Q·Kᵀ for the 16 rows and BN keys.
    float s[NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk += 2) {
        std::uint32_t b[4];
        ldmatrix_x4(b, sK + (nb * 8 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8);
        mma_16816<T>(s[nb], qf[kk], b[0], b[1]);
        mma_16816<T>(s[nb], qf[kk + 1], b[2], b[3]);
      }
    }

    // Scale (log2 domain), bias, mask; row maxima over the 4 threads sharing a row.
    const bool tail = k0 + BN > len;  // warp-uniform: only the last tile has masked keys
    float tile_max_a = -INFINITY, tile_max_b = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + nb * 8 + 2 * t4 + (e & 1);
        const int row = e < 2 ? row_a : row_b;
        float x = s[nb][e] * scale_log2;
        if (alibi) x -= slope_log2 * fabsf(static_cast<float>(row - key));
        if (tail && key >= len) x = -INFINITY;
        s[nb][e] = x;
        if (e < 2)
          tile_max_a = fmaxf(tile_max_a, x);
        else
          tile_max_b = fmaxf(tile_max_b, x);
      }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      tile_max_a = fmaxf(tile_max_a, __shfl_xor_sync(0xffffffffu, tile_max_a, off));
      tile_max_b = fmaxf(tile_max_b, __shfl_xor_sync(0xffffffffu, tile_max_b, off));
    }
    const float new_a = fmaxf(m_a, tile_max_a), new_b = fmaxf(m_b, tile_max_b);
    // Rows with every key masked so far keep a finite reference (no -inf - -inf).
    const float use_a = new_a == -INFINITY ? 0.0f : new_a, use_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2f(m_a - use_a), corr_b = exp2f(m_b - use_b);
    m_a = new_a;
    m_b = new_b;
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      s[nb][0] = exp2f(s[nb][0] - use_a);
      s[nb][1] = exp2f(s[nb][1] - use_a);
      s[nb][2] = exp2f(s[nb][2] - use_b);
      s[nb][3] = exp2f(s[nb][3] - use_b);
      sum_a += s[nb][0] + s[nb][1];
      sum_b += s[nb][2] + s[nb][3];
    }
    l_a = l_a * corr_a + sum_a;  // per-thread partial sums; the 4 partials are added at the end
    l_b = l_b * corr_b + sum_b;
#pragma unroll
    for (int db = 0; db < DB; ++db) {
      o[db][0] *= corr_a;
      o[db][1] *= corr_a;
      o[db][2] *= corr_b;
      o[db][3] *= corr_b;
    }

    // O += P·V: P (the S accumulators, rounded to T) is the A operand; V is read transposed.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int db = 0; db < DB; db += 2) {
        std::uint32_t b[4];
        ldmatrix_x4_trans(b,
                          sV + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + db * 8 + (lane / 16) * 8);
        mma_16816<T>(o[db], a, b[0], b[1]);
        mma_16816<T>(o[db + 1], a, b[2], b[3]);
      }
    }
  }

  // O / l for the rows that exist.
  __device__ __forceinline__ void store(T* oh, std::int64_t ld, int len, int t4) {
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
      l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
#pragma unroll
    for (int db = 0; db < DB; ++db) {
      const int col = db * 8 + 2 * t4;
      if (row_a < len)
        *reinterpret_cast<std::uint32_t*>(oh + std::int64_t{row_a} * ld + col) =
            pack2<T>(o[db][0] * inv_a, o[db][1] * inv_a);
      if (row_b < len)
        *reinterpret_cast<std::uint32_t*>(oh + std::int64_t{row_b} * ld + col) =
            pack2<T>(o[db][2] * inv_b, o[db][3] * inv_b);
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

  const auto [head, tile, len, ld, head_offset] = head_slice(cu, tiles_per_seq, heads, HD);
  const int q0 = tile * BM;
  if (q0 >= len) return;
  const T* kh = k + head_offset;
  const T* vh = v + head_offset;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float slope_log2 = alibi ? alibi[head] * kLog2e : 0.0f;
  QueryRows<T, HD, BN> rows;
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
// usual case): one CTA of 4 warps per (sequence, head). The whole of K and V is loaded into shared
// memory once (the tiled kernel loads it once per 64-query tile), Q fragments come straight from global
// memory, and warp w takes the 16-row blocks w, w + 4, ... that exist.
constexpr int kShortMaxLen = 256;
constexpr int kShortKeys = 64;  // keys per tile

template <typename T, int HD>
__global__ void __launch_bounds__(128, 4)
    flash_short_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       T* __restrict__ out, const std::int32_t* __restrict__ cu, int heads, float scale_log2,
                       const float* __restrict__ alibi, const float2* __restrict__ rope) {
  constexpr int BN = kShortKeys, LDS = FlashConfig<HD>::kStride;
  const auto [head, tile, len, ld, head_offset] = head_slice(cu, 1, heads, HD);
  if (len == 0) return;
  const int num_tiles = (len + BN - 1) / BN;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* const sK = reinterpret_cast<T*>(shared_bytes);
  T* const sV = sK + num_tiles * BN * LDS;

  load_rows<T, HD>(sK, k + head_offset, ld, 0, num_tiles * BN, len);
  cp_async_commit();
  load_rows<T, HD>(sV, v + head_offset, ld, 0, num_tiles * BN, len);
  cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float slope_log2 = alibi ? alibi[head] * kLog2e : 0.0f;
  QueryRows<T, HD, BN> rows;
  auto load_q = [&](int r0) {
    rows.reset(r0, lane / 4);
    rows.load_q_global(q + head_offset, ld, len, lane % 4);
    if (rope) rows.rotate_q(rope, len, lane % 4);
  };
  // The first row block's Q loads go out while K and V land.
  const int first_row = warp * 16;
  if (first_row < len) load_q(first_row);
  if (rope) {  // K is rotated in place while V is still landing
    cp_async_wait<1>();
    __syncthreads();
    rotate_rows<T, HD, LDS>(sK, rope, len);
  }
  cp_async_wait<0>();
  __syncthreads();
  for (int r0 = first_row; r0 < len; r0 += 4 * 16) {
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

template <typename T, int HD>
void launch_short(const AttentionArgs& a, cudaStream_t stream) {
  const int tiles = (a.max_seqlen + kShortKeys - 1) / kShortKeys;
  const std::size_t shared =
      sizeof(T) * static_cast<std::size_t>(2 * tiles * kShortKeys * FlashConfig<HD>::kStride);
  check(cudaFuncSetAttribute(flash_short_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared)),
        "cudaFuncSetAttribute(short attention)");
  dim3 grid(static_cast<unsigned>(a.num_seqs), static_cast<unsigned>(a.heads));
  flash_short_kernel<T, HD><<<grid, 128, shared, stream>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<T*>(a.out), a.cu_seqlens, a.heads, a.softmax_scale * kLog2e, a.alibi_slopes,
      reinterpret_cast<const float2*>(a.rope));
  check_launch("flash_short_kernel");
}

// ---------------------------------------------------------------------------------------------
// Plain kernel: fp32 arithmetic, any head_dim

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

  const auto [head, tile, len, ld, head_offset] = head_slice(cu, tiles_per_seq, heads, hd);
  const int q0 = tile * kPlainQueries;
  if (q0 >= len) return;
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

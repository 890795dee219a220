#pragma once
// The CPU backend: fp32 kernels, GEMM through oneDNN (f32 or bf16 operands), threads from the engine's
// one pool.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace vnp::engine::cpu {

Backend& backend();

// Op-level profile (benchmarks: bench_esm2_cpu --profile): while on, every op of the CPU backend adds
// its wall time to its kind (products per weight shape and dtype); turning it on or off clears it.
struct ProfileEntry {
  std::string op;
  std::int64_t calls = 0;
  double seconds = 0;
};
void set_profiling(bool on);
std::vector<ProfileEntry> profile_report();  // the most expensive first

// Kernels (raw pointers, row-major, arguments already checked by ops.cpp).

// A linear weight reordered once into the layout of the GEMM's tiles (gemm.cpp); opaque here.
struct PackedWeight;
// weight [n, k] row-major of `dtype` (f32 or bf16), packed for products with `operands` (f32, or
// bf16 from an f32 or bf16 weight).
std::shared_ptr<const PackedWeight> pack_weight(const void* weight, DType dtype, std::int64_t n,
                                                std::int64_t k, DType operands);
// C[m, n] = A[m, k]·Wᵀ (+ bias[n]) (+ C when accumulate) (then GELU when gelu), A and C f32 and
// contiguous; A is rounded to bf16 on the way in when the weight is. Cut into fixed tiles
// (independent of the thread count and of m), each a single-threaded oneDNN matmul.
void gemm_packed(std::int64_t m, const float* a, const PackedWeight& w, float* c, const float* bias,
                 bool accumulate, bool gelu);

void layer_norm(const float* x, const float* gamma, const float* beta, float eps, std::int64_t rows,
                std::int64_t cols, float* out);
float gelu(float x);  // exact erf form
void gelu(const float* x, std::int64_t n, float* out);
void gated_gelu(const float* x, std::int64_t rows, std::int64_t half, float* out);
void rotary(float* x, const float* inv_freq, const std::vector<std::int32_t>& cu_seqlens,
            std::int32_t max_seqlen, int num_heads, std::int64_t head_dim);

// Attention over [begin, end) token ranges given by cu_seqlens; padded = the v1 rectangle path.
void attention(const float* q, const float* k, const float* v, const std::vector<std::int32_t>& cu_seqlens,
               std::int32_t max_seqlen, int num_heads, std::int64_t head_dim, float softmax_scale,
               const float* alibi_slopes, bool padded, float* out);

}  // namespace vnp::engine::cpu

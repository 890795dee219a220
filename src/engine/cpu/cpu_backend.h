#pragma once
// The CPU backend: fp32 kernels, GEMM through OpenBLAS, threads from the engine's one pool.
#include <cstdint>
#include <vector>

#include "engine/backend.h"

namespace vnp::engine::cpu {

Backend& backend();

// Kernels (raw pointers, row-major, arguments already checked by ops.cpp).

// C[M,N] = A[M,K]·B[N,K]ᵀ (+ C when accumulate) (+ bias[N]) (then GELU when gelu). lda/ldb/ldc are
// row strides. Cut into fixed tiles (independent of the thread count), each a single-threaded sgemm.
void gemm_nt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda, const float* b,
             std::int64_t ldb, float* c, std::int64_t ldc, const float* bias, bool accumulate, bool gelu);

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

#pragma once
// The ops API: free functions on Tensors that the models are written against. Each op checks its
// arguments (dtype, shape, same device) and dispatches on the device to that device's backend
// (engine/backend.h: cpu/ now, cuda/ later). Model code calls ops only; it never branches on the device.
//
// Conventions:
// - Activations are 2-D [tokens, features], row-major, in the PACKED layout (see PackedBatch).
// - Linear weights are [out_features, in_features] (PyTorch layout): y = x·Wᵀ + b.
// - Attention inputs q, k, v are [tokens, heads·head_dim] with feature index c = head·head_dim + d.
// - Softmax, layer-norm statistics and pooling sums accumulate in fp32 or wider, whatever the dtype.
// - On the CPU every op gives bit-identical results for any thread count.
// - Ops ending in '_' work in place.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace vnp::engine {

// One batch layout for both encoders: the tokens of n sequences back to back, no padding, plus
// cu_seqlens (int32 prefix sums, n+1 entries, cu_seqlens[0] = 0) and the longest sequence length.
struct PackedBatch {
  Tensor tokens;                              // [total_tokens] i32, on the batch's device
  Tensor cu_seqlens;                          // [n+1] i32, same device as tokens
  std::vector<std::int32_t> host_cu_seqlens;  // the same values, always on the host
  std::vector<std::int32_t> host_tokens;      // the token ids on the host (pack() keeps them; may be empty)
  std::int32_t max_seqlen = 0;

  // Packs token-id sequences (each non-empty) into one batch on `device`.
  static PackedBatch pack(const std::vector<std::vector<std::int32_t>>& sequences,
                          Device device = Device::cpu());
  std::int64_t num_sequences() const { return static_cast<std::int64_t>(host_cu_seqlens.size()) - 1; }
  std::int64_t total_tokens() const { return host_cu_seqlens.empty() ? 0 : host_cu_seqlens.back(); }
  std::int32_t seq_begin(std::int64_t i) const { return host_cu_seqlens[static_cast<std::size_t>(i)]; }
  std::int32_t seq_len(std::int64_t i) const {
    return host_cu_seqlens[static_cast<std::size_t>(i) + 1] - host_cu_seqlens[static_cast<std::size_t>(i)];
  }
  Device device() const { return tokens.device(); }
  PackedBatch to(Device device) const;
};

// Token range [begin, end) of one pooled output row, as absolute indices into the packed tokens.
struct TokenRange {
  std::int32_t begin = 0;
  std::int32_t end = 0;
};

struct AttentionParams {
  int num_heads = 1;
  float softmax_scale = 1.0f;  // scores = softmax_scale · (q·k) [+ alibi bias]
  // Optional [num_heads] f32 ALiBi slopes (DNABERT-S): bias[h,i,j] = -slope[h]·|i - j|, i and j
  // positions within the sequence. Undefined = no bias (ESM-2).
  Tensor alibi_slopes;
  // Optional [head_dim / 2] f32 rotary frequencies (ESM-2): q and k are rotated first, exactly as
  // ops::rotary_ does, which lets a backend fuse the rotation into its attention kernel.
  Tensor rotary_inv_freq;
};

namespace ops {

// table[ids[t], :] for every token: [V, D] f32, [N] i32 -> [N, D]. Ids out of range throw.
Tensor embedding(const Tensor& table, const Tensor& ids);

// x·Wᵀ + b: x [N, in], weight [out, in], bias [out] or undefined -> [N, out].
// On the CPU x is f32 and the weight f32 or bf16 (bf16: x is rounded to bf16, products accumulate
// in fp32, the result is f32); the bias is f32.
//
// fp8 (GPU only): a weight of dtype f8_e4m3 carries one scale per output row (ops::cast to f8); x is
// then f8 with per-row scales too, or f16/bf16 and quantised per row on the way in. The product
// accumulates in fp32 and writes the bias's dtype (f16 without a bias).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// The weight with its backend's GEMM layout attached, computed once (the CPU reorders it into the
// blocked layout of its oneDNN tiles; a GPU returns it as it is). linear and friends then use that
// layout; a weight without one is packed on each call. Pack last: an in-place op on a packed weight
// (scale_) leaves the layout stale.
Tensor pack_linear_weight(const Tensor& weight);
// The dtype activations flow in when the products compute in `compute` (--precision): on the CPU
// always f32 (a bf16 product rounds its input inside the GEMM, the residual stream stays f32); on a
// GPU the compute type itself (f16 for f8, whose products quantise their inputs).
DType activation_dtype(Device device, DType compute);

// gelu(x·Wᵀ + b), the GELU fused into the GEMM epilogue where the backend can. With an f8 weight the
// result is f8 with per-row scales: in a transformer it only ever feeds the next f8 product.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// out += x·Wᵀ + b (residual add fused into the GEMM): out [N, out].
void linear_accumulate_(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// Layer norm over the last dimension (biased variance, statistics in fp32 or wider):
// x [N, D], gamma and beta [D] -> [N, D], of dtype out_dtype (default x's). out_dtype f8_e4m3 (GPU)
// quantises each normalised row straight from fp32, with its own scale, for the next f8 product.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, DType out_dtype);

// Exact GELU, x·0.5·(1 + erf(x/√2)) (not the tanh approximation).
Tensor gelu(const Tensor& x);
// Gated GELU of DNABERT-S's GLU MLP: x [N, 2F] -> gelu(x[:, :F]) * x[:, F:]  ([N, F]);
// the FIRST half is the gated (activated) one (reference/models.md §2.3).
Tensor gated_gelu(const Tensor& x);

Tensor add(const Tensor& a, const Tensor& b);  // same shapes
void add_(Tensor& a, const Tensor& b);         // a += b
void scale_(Tensor& x, float factor);          // x *= factor
// x [N, D] *= row_scale [N] f32, row by row (ESM-2 token-dropout rescale with <mask> tokens).
void scale_rows_(Tensor& x, const Tensor& row_scale);

// Rotary position embedding, half-split (GPT-NeoX) style, in place on x [N, heads·head_dim]:
// for j < hd/2: x_j cosθ − x_{j+hd/2} sinθ; for j ≥ hd/2: x_j cosθ + x_{j−hd/2} sinθ, with
// θ = t·inv_freq[j mod hd/2], t the position WITHIN each sequence of `batch` (restarts at 0).
// inv_freq [hd/2] f32 (the checkpoint's values); cos/sin tables are computed in fp32.
void rotary_(Tensor& x, const Tensor& inv_freq, const PackedBatch& batch, int num_heads);

// Attention on the packed layout: every sequence attends only to itself, no padding anywhere.
// q, k, v [N, heads·head_dim] -> [N, heads·head_dim]. Softmax in fp32.
Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                        const AttentionParams& params);
// The v1.0-compatible path, same contract: sequences padded to a [n, max_seqlen] rectangle (pad rows
// filled with 1.0), explicit scores Q·Kᵀ by batched GEMM, key-padding mask (-inf), fp32 softmax,
// ·V, then unpacked back to the packed layout. Must equal attention_varlen up to rounding.
Tensor attention_padded(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                        const AttentionParams& params);

// Mean of x's rows over each range: x [N, D] -> [ranges.size(), D]; sums in double on the CPU.
// An empty range is an error.
Tensor mean_pool_varlen(const Tensor& x, const std::vector<TokenRange>& ranges);

// Element type conversion (f32 <-> f16/bf16), on the tensor's device. Casting a 2-D tensor to f8_e4m3
// (GPU) quantises each row with its own scale: scale = max|row| / 448 (1 for an all-zero row),
// element = e4m3(x · 448 / max|row|), rounded to nearest even (the tensor's row_scale()).
Tensor cast(const Tensor& x, DType dtype);

}  // namespace ops
}  // namespace vnp::engine

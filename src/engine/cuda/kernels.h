#pragma once
// Launchers of the CUDA kernels (defined in the .cu files beside this header). Plain C++ signatures:
// device pointers, sizes and the stream to enqueue on. Nothing here synchronises; callers check
// launch errors (cuda_check.h). "dt" is the element type of the activations (f32, f16 or bf16);
// everything that accumulates (norm statistics, softmax, pooling) does so in fp32 or wider.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/tensor.h"

namespace vnp::engine::cuda::kernels {

// out[t, :] = table[ids[t], :]; an id outside [0, vocab) writes zeros, sets error_flag[0] = 1 and, for the
// first such id, error_flag[1] = the id.
void embedding(const void* table, DType dt, std::int64_t vocab, std::int64_t dim, const std::int32_t* ids,
               std::int64_t n, void* out, int* error_flag, cudaStream_t stream);

// Element-wise ops on n elements.
void gelu(const void* x, void* out, DType dt, std::int64_t n, cudaStream_t stream);  // exact erf form
void add(void* a, const void* b, DType dt, std::int64_t n, cudaStream_t stream);     // a += b
void scale(void* x, DType dt, std::int64_t n, float factor, cudaStream_t stream);
void cast(const void* x, DType from, void* out, DType to, std::int64_t n, cudaStream_t stream);
// x [rows, 2f] -> out [rows, f] = gelu(x[:, :f]) * x[:, f:].
void gated_gelu(const void* x, void* out, DType dt, std::int64_t rows, std::int64_t f, cudaStream_t stream);
// x [rows, cols] *= row_scale[row] (f32).
void scale_rows(void* x, DType dt, std::int64_t rows, std::int64_t cols, const float* row_scale,
                cudaStream_t stream);

// Layer norm over each row of x [rows, cols]; gamma and beta are f32 [cols]; two-pass fp32 statistics.
void layer_norm(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                std::int64_t cols, float eps, void* out, cudaStream_t stream);

// The same, written as fp8 e4m3 (out: bytes [rows, cols]) with one scale per row (scale [rows]), quantised
// from the fp32 normalised values (see quantize_rows).
void layer_norm_f8(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                   std::int64_t cols, float eps, std::uint8_t* out, float* scale, cudaStream_t stream);

// The raw result of an f8 product (x8·W8ᵀ, scaled by alpha only) made true: value[r, c] =
// raw[r, c] · row_scale[r] · col_scale[c] · factor + bias[c] (row/col scales: the operands' row scales;
// bias of the activation dtype, may be null). row_scale null = the input is already the value (a
// block-scaled product: cuBLASLt applied the scales), plus the bias if any.
struct ProductScale {
  const float* row_scale = nullptr;
  const float* col_scale = nullptr;
  float factor = 1.0f;
  const void* bias = nullptr;
};

// Per-row fp8 e4m3 quantisation of x [rows, cols] (ops::cast to f8): scale[r] = max|row| / 448 (1 for a
// zero row), out = e4m3(x · 448 / max|row|), nearest even, saturating. With gelu, the rows quantised are
// gelu(x) (erf form): the hand-over from one f8 product to the next in a transformer FFN. `product`
// first turns a raw f8 product into its values.
void quantize_rows(const void* x, DType dt, std::int64_t rows, std::int64_t cols, bool gelu,
                   std::uint8_t* out, float* scale, cudaStream_t stream, const ProductScale& product = {});

// Block-scaled fp8 e4m3 (Tensor::F8Scaling; the scale rule of quantize_rows per block, any rows and cols,
// the last blocks may be partial). 1×128 runs of each row (activations; gelu and product as above):
// scale [ceil(cols/128), rows]. 128×128 tiles (weights): scale [ceil(rows/128), ld] with
// ld >= ceil(cols/128), the padding set to 1.
void quantize_1x128(const void* x, DType dt, std::int64_t rows, std::int64_t cols, bool gelu,
                    std::uint8_t* out, float* scale, cudaStream_t stream, const ProductScale& product = {});
void quantize_128x128(const void* x, DType dt, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                      std::uint8_t* out, float* scale, cudaStream_t stream);
// layer_norm_f8 with 1×128 runs (scale [ceil(cols/128), rows]).
void layer_norm_f8_1x128(const void* x, DType dt, const float* gamma, const float* beta, std::int64_t rows,
                         std::int64_t cols, float eps, std::uint8_t* out, float* scale, cudaStream_t stream);

// out [rows, cols] = (or += with accumulate) the values of a raw f8 product (ProductScale); out may be raw.
void scale_product(const void* raw, DType dt, std::int64_t rows, std::int64_t cols,
                   const ProductScale& product, void* out, bool accumulate, cudaStream_t stream);

// Half-split rotary embedding in place on x [tokens, heads·head_dim]; positions restart at 0 at every
// cu_seqlens boundary; inv_freq f32 [head_dim/2]; cos and sin computed in fp32.
void rotary(void* x, DType dt, std::int64_t tokens, int heads, int head_dim, const float* inv_freq,
            const std::int32_t* cu_seqlens, int num_seqs, cudaStream_t stream);

// Mean of rows [ranges[2i], ranges[2i+1]) of x [*, cols] into out [n_out, cols] (f32), summed in double.
void mean_pool(const void* x, DType dt, std::int64_t cols, const std::int32_t* ranges, std::int64_t n_out,
               float* out, cudaStream_t stream);

// Attention over packed sequences (q, k, v, out: [tokens, heads·head_dim], contiguous). Online softmax in
// fp32; alibi_slopes (f32 [heads]) may be null. Three kernels compute the same function:
//  - kShort: f16/bf16, head_dim 64, sequences of at most 256 tokens: one CTA per (sequence, head)
//    holding the whole of K and V in shared memory (tensor cores);
//  - kTiled: f16/bf16, head_dim 64 or 128, any length: one CTA per (sequence, head, 64 queries), K/V
//    tiles streamed (tensor cores);
//  - kPlain: any dtype (f32: the exact path) and head_dim, fp32 arithmetic.
struct AttentionArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  DType dt;
  int heads;
  int head_dim;
  const std::int32_t* cu_seqlens;  // device, num_seqs + 1
  int num_seqs;
  int max_seqlen;
  float softmax_scale;
  const float* alibi_slopes;  // device or null
  // Device or null: rotary applied to q and k first, as a [max_seqlen][head_dim / 2] table of (cos, sin)
  // pairs (rotary_table). Only the short kernel takes it.
  const float* rope = nullptr;
};
// (cos, sin) of position · inv_freq[i], fp32, for positions [0, max_len): [max_len][half] float pairs,
// the same values the rotary op uses.
void rotary_table(const float* inv_freq, int half, int max_len, float* table, cudaStream_t stream);
enum class AttentionKernel { kPlain, kTiled, kShort };
// The fastest kernel that takes these arguments (16-byte aligned rows are needed by the tensor-core ones).
AttentionKernel attention_kernel_for(const AttentionArgs& args);
void attention_varlen(const AttentionArgs& args, cudaStream_t stream);
// A given kernel, for tests and benchmarks that compare them; throws std::invalid_argument where the
// kernel cannot take the arguments.
void attention_varlen_with(AttentionKernel kernel, const AttentionArgs& args, cudaStream_t stream);

// v1 padded path helpers. pad: packed [tokens, heads·hd] -> [n, heads, T, hd] (rows t >= len filled
// with `fill`); unpad: the reverse for rows t < len.
void pad_heads(const void* x, void* padded, DType dt, const std::int32_t* cu_seqlens, int num_seqs, int heads,
               int head_dim, int padded_len, float fill, cudaStream_t stream);
void unpad_heads(const void* padded, void* x, DType dt, const std::int32_t* cu_seqlens, int num_seqs,
                 int heads, int head_dim, int padded_len, cudaStream_t stream);
// Row softmax of scores [n·heads, T, T] (f32, already scaled) with the key-padding mask (keys j >= len:
// -inf) and optional ALiBi bias, written as probabilities of type dt.
void masked_softmax(const float* scores, void* probs, DType dt, const std::int32_t* cu_seqlens, int num_seqs,
                    int heads, int padded_len, const float* alibi_slopes, cudaStream_t stream);

}  // namespace vnp::engine::cuda::kernels

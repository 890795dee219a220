// Argument checks shared by every backend, then dispatch on the device. A failed check is a
// programming error in the caller (models check weights themselves and throw ModelError), so it is
// reported as std::invalid_argument naming the op and the tensors.
#include "engine/ops.h"

#include <stdexcept>
#include <string>

#include "engine/backend.h"

namespace vnp::engine {

PackedBatch PackedBatch::pack(const std::vector<std::vector<std::int32_t>>& sequences, Device device) {
  PackedBatch b;
  b.host_cu_seqlens.reserve(sequences.size() + 1);
  b.host_cu_seqlens.push_back(0);
  std::vector<std::int32_t> tokens;
  for (const auto& s : sequences) {
    if (s.empty()) throw std::invalid_argument("PackedBatch::pack: empty sequence");
    tokens.insert(tokens.end(), s.begin(), s.end());
    b.host_cu_seqlens.push_back(static_cast<std::int32_t>(tokens.size()));
    b.max_seqlen = std::max(b.max_seqlen, static_cast<std::int32_t>(s.size()));
  }
  auto n_tokens = static_cast<std::int64_t>(tokens.size());
  auto n_bounds = static_cast<std::int64_t>(b.host_cu_seqlens.size());
  b.tokens = Tensor::from_ints(tokens, {n_tokens}).to(device);
  b.cu_seqlens = Tensor::from_ints(b.host_cu_seqlens, {n_bounds}).to(device);
  b.host_tokens = std::move(tokens);
  return b;
}

PackedBatch PackedBatch::to(Device device) const {
  PackedBatch b = *this;
  b.tokens = tokens.to(device);
  b.cu_seqlens = cu_seqlens.to(device);
  return b;
}

namespace ops {
namespace {

[[noreturn]] void fail(const char* op, const std::string& problem) {
  throw std::invalid_argument(std::string("ops::") + op + ": " + problem);
}

void require(bool ok, const char* op, const std::string& problem) {
  if (!ok) fail(op, problem);
}

// Activations and weights are f32; a GPU also computes in f16/bf16 (--precision), the CPU in f32 only.
bool float_dtype_ok(const Tensor& t) {
  return t.dtype() == DType::kF32 ||
         (!t.device().is_cpu() && (t.dtype() == DType::kF16 || t.dtype() == DType::kBF16));
}

void require_f32_2d(const Tensor& t, const char* op, const char* what) {
  require(t.defined(), op, std::string(what) + " is undefined");
  require(float_dtype_ok(t) && t.ndim() == 2, op,
          std::string(what) + " must be 2-D f32 (or f16/bf16 on a GPU), got " + t.describe());
}

void require_vector(const Tensor& t, std::int64_t n, DType dtype, const char* op, const char* what) {
  require(t.defined() && t.dtype() == dtype && t.ndim() == 1 && t.dim(0) == n, op,
          std::string(what) + " must be " + dtype_name(dtype) + "[" + std::to_string(n) + "], got " +
              t.describe());
}

void require_same_device(const Tensor& a, const Tensor& b, const char* op) {
  require(!b.defined() || a.device() == b.device(), op,
          "tensors on different devices: " + a.describe() + " and " + b.describe());
}

// An f8 tensor as the ops take it: 2-D, on a GPU, with its per-row scales.
bool is_scaled_f8(const Tensor& t) {
  return t.defined() && t.dtype() == DType::kF8E4M3 && t.ndim() == 2 && !t.device().is_cpu() &&
         t.row_scale().defined();
}

// f8 products: weight f8 with row scales; x f8 with row scales or f16/bf16; bias f16/bf16 or none.
void check_linear_f8(const Tensor& x, const Tensor& weight, const Tensor& bias, const char* op) {
  require(is_scaled_f8(weight), op, "an f8 weight needs per-row scales on a GPU, got " + weight.describe());
  require(is_scaled_f8(x) || (x.defined() && x.ndim() == 2 && !x.device().is_cpu() &&
                              (x.dtype() == DType::kF16 || x.dtype() == DType::kBF16)),
          op, "x must be f8 with row scales or f16/bf16 for an f8 weight, got " + x.describe());
  require(x.dim(1) == weight.dim(1), op, "x " + x.describe() + " does not match weight " + weight.describe());
  if (bias.defined()) {
    require(bias.dtype() == DType::kF16 || bias.dtype() == DType::kBF16, op,
            "the bias of an f8 product must be f16/bf16, got " + bias.describe());
    require_vector(bias, weight.dim(0), bias.dtype(), op, "bias");
  }
  require_same_device(x, weight, op);
  require_same_device(x, bias, op);
}

// The CPU's bf16 products: an f32 x (rounded to bf16 inside the GEMM) with a bf16 weight.
bool is_cpu_bf16_product(const Tensor& x, const Tensor& weight) {
  return x.defined() && weight.defined() && x.device().is_cpu() && weight.device().is_cpu() &&
         x.dtype() == DType::kF32 && weight.dtype() == DType::kBF16 && weight.ndim() == 2;
}

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const char* op) {
  if (weight.defined() && weight.dtype() == DType::kF8E4M3) return check_linear_f8(x, weight, bias, op);
  require_f32_2d(x, op, "x");
  const bool cpu_bf16 = is_cpu_bf16_product(x, weight);
  if (!cpu_bf16) require_f32_2d(weight, op, "weight");
  require(x.dim(1) == weight.dim(1) && (x.dtype() == weight.dtype() || cpu_bf16), op,
          "x " + x.describe() + " does not match weight " + weight.describe());
  if (bias.defined())
    require_vector(bias, weight.dim(0), bias.dtype() == x.dtype() ? x.dtype() : DType::kF32, op, "bias");
  require_same_device(x, weight, op);
  require_same_device(x, bias, op);
}

void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                     const AttentionParams& p, const char* op) {
  require_f32_2d(q, op, "q");
  require(k.defined() && v.defined() && k.shape() == q.shape() && v.shape() == q.shape(), op,
          "q, k, v shapes differ: " + q.describe() + ", " + k.describe() + ", " + v.describe());
  require(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op, "q, k, v dtypes differ");
  require(p.num_heads > 0 && q.dim(1) % p.num_heads == 0, op,
          std::to_string(q.dim(1)) + " features do not split into " + std::to_string(p.num_heads) + " heads");
  require(q.dim(0) == batch.total_tokens(), op,
          "q has " + std::to_string(q.dim(0)) + " rows, the batch " + std::to_string(batch.total_tokens()) +
              " tokens");
  if (p.alibi_slopes.defined()) require_vector(p.alibi_slopes, p.num_heads, DType::kF32, op, "alibi_slopes");
  if (p.rotary_inv_freq.defined()) {
    const std::int64_t head_dim = q.dim(1) / p.num_heads;
    require(head_dim % 2 == 0, op, "rotary needs an even head_dim");
    require_vector(p.rotary_inv_freq, head_dim / 2, DType::kF32, op, "rotary_inv_freq");
    require_same_device(q, p.rotary_inv_freq, op);
  }
  require_same_device(q, k, op);
  require_same_device(q, v, op);
  require_same_device(q, batch.cu_seqlens, op);
  require_same_device(q, p.alibi_slopes, op);
}

}  // namespace

Tensor embedding(const Tensor& table, const Tensor& ids) {
  require_f32_2d(table, "embedding", "table");
  require(ids.defined() && ids.dtype() == DType::kI32 && ids.ndim() == 1, "embedding",
          "ids must be 1-D i32, got " + ids.describe());
  require_same_device(table, ids, "embedding");
  return backend_for(table.device()).embedding(table, ids);
}

Tensor pack_linear_weight(const Tensor& weight) {
  require(weight.defined() && weight.ndim() == 2 &&
              (float_dtype_ok(weight) || (weight.device().is_cpu() && weight.dtype() == DType::kBF16) ||
               (!weight.device().is_cpu() && weight.dtype() == DType::kF8E4M3)),
          "pack_linear_weight",
          "weight must be 2-D f32 or bf16 (or f16/f8 on a GPU), got " + weight.describe());
  return backend_for(weight.device()).pack_linear_weight(weight);
}

DType activation_dtype(Device device, DType compute) {
  if (device.is_cpu()) return DType::kF32;
  return compute == DType::kF8E4M3 ? DType::kF16 : compute;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias, "linear");
  return backend_for(x.device()).linear(x, weight, bias, false);
}

Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias, "linear_gelu");
  return backend_for(x.device()).linear(x, weight, bias, true);
}

void linear_accumulate_(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias, "linear_accumulate_");
  require_f32_2d(out, "linear_accumulate_", "out");
  require(weight.dtype() != DType::kF8E4M3 || !bias.defined() || bias.dtype() == out.dtype(),
          "linear_accumulate_",
          "out " + out.describe() + " and bias " + bias.describe() + " differ in dtype");
  require(out.dim(0) == x.dim(0) && out.dim(1) == weight.dim(0), "linear_accumulate_",
          "out " + out.describe() + " does not match x " + x.describe() + " and weight " + weight.describe());
  require_same_device(x, out, "linear_accumulate_");
  backend_for(x.device()).linear_accumulate(out, x, weight, bias);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  return layer_norm(x, gamma, beta, eps, x.dtype());
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, DType out_dtype) {
  require_f32_2d(x, "layer_norm", "x");
  require(out_dtype == x.dtype() || (out_dtype == DType::kF8E4M3 && !x.device().is_cpu()), "layer_norm",
          std::string("cannot write ") + dtype_name(out_dtype) + " from " + x.describe());
  require_vector(gamma, x.dim(1), DType::kF32, "layer_norm", "gamma");
  require_vector(beta, x.dim(1), DType::kF32, "layer_norm", "beta");
  require_same_device(x, gamma, "layer_norm");
  require_same_device(x, beta, "layer_norm");
  require(eps >= 0.0f, "layer_norm", "negative eps");
  return backend_for(x.device()).layer_norm(x, gamma, beta, eps, out_dtype);
}

Tensor gelu(const Tensor& x) {
  require(x.defined() && float_dtype_ok(x), "gelu", "x must be f32, got " + x.describe());
  return backend_for(x.device()).gelu(x);
}

Tensor gated_gelu(const Tensor& x) {
  require_f32_2d(x, "gated_gelu", "x");
  require(x.dim(1) % 2 == 0, "gated_gelu", "odd feature count in " + x.describe());
  return backend_for(x.device()).gated_gelu(x);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  add_(out, b);
  return out;
}

void add_(Tensor& a, const Tensor& b) {
  require(a.defined() && b.defined() && float_dtype_ok(a) && b.dtype() == a.dtype() && a.shape() == b.shape(),
          "add", "needs two f32 tensors of one shape, got " + a.describe() + " and " + b.describe());
  require_same_device(a, b, "add");
  backend_for(a.device()).add(a, b);
}

void scale_(Tensor& x, float factor) {
  require(x.defined() && float_dtype_ok(x), "scale_", "x must be f32, got " + x.describe());
  backend_for(x.device()).scale(x, factor);
}

void scale_rows_(Tensor& x, const Tensor& row_scale) {
  require_f32_2d(x, "scale_rows_", "x");
  require_vector(row_scale, x.dim(0), DType::kF32, "scale_rows_", "row_scale");
  require_same_device(x, row_scale, "scale_rows_");
  backend_for(x.device()).scale_rows(x, row_scale);
}

void rotary_(Tensor& x, const Tensor& inv_freq, const PackedBatch& batch, int num_heads) {
  require_f32_2d(x, "rotary_", "x");
  require(num_heads > 0 && x.dim(1) % num_heads == 0 && (x.dim(1) / num_heads) % 2 == 0, "rotary_",
          std::to_string(x.dim(1)) + " features do not split into " + std::to_string(num_heads) +
              " heads of even size");
  require_vector(inv_freq, x.dim(1) / num_heads / 2, DType::kF32, "rotary_", "inv_freq");
  require(x.dim(0) == batch.total_tokens(), "rotary_", "x rows differ from the batch's tokens");
  require_same_device(x, inv_freq, "rotary_");
  require_same_device(x, batch.cu_seqlens, "rotary_");
  backend_for(x.device()).rotary(x, inv_freq, batch, num_heads);
}

Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                        const AttentionParams& params) {
  check_attention(q, k, v, batch, params, "attention_varlen");
  return backend_for(q.device()).attention_varlen(q, k, v, batch, params);
}

Tensor attention_padded(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                        const AttentionParams& params) {
  check_attention(q, k, v, batch, params, "attention_padded");
  return backend_for(q.device()).attention_padded(q, k, v, batch, params);
}

Tensor mean_pool_varlen(const Tensor& x, const std::vector<TokenRange>& ranges) {
  require_f32_2d(x, "mean_pool_varlen", "x");
  for (const auto& r : ranges)
    require(r.begin >= 0 && r.begin < r.end && r.end <= x.dim(0), "mean_pool_varlen",
            "range [" + std::to_string(r.begin) + ", " + std::to_string(r.end) + ") is empty or outside " +
                x.describe());
  return backend_for(x.device()).mean_pool_varlen(x, ranges);
}

Tensor cast(const Tensor& x, DType dtype) {
  auto is_float = [](DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; };
  const bool quantise = dtype == DType::kF8E4M3 && x.ndim() == 2 && !x.device().is_cpu();
  require(x.defined() && is_float(x.dtype()) && (is_float(dtype) || quantise), "cast",
          std::string("only f32/f16/bf16 conversions and 2-D quantisation to f8 on a GPU, got ") +
              x.describe() + " to " + dtype_name(dtype));
  return backend_for(x.device()).cast(x, dtype);
}

}  // namespace ops
}  // namespace vnp::engine

#pragma once
// The weight types both encoders are made of, each with its forward: a linear layer and a layer norm.
// Loading stays with the model (each reads its own published tensor names); precision conversion and
// the backend's weight packing live here, once for every model.
#include "engine/ops.h"
#include "engine/tensor.h"

namespace vnp::engine {

// y = x·Wᵀ + b: weight [out, in], bias [out] or undefined.
struct Linear {
  Tensor weight;
  Tensor bias;

  Tensor operator()(const Tensor& x) const { return ops::linear(x, weight, bias); }
  Tensor with_gelu(const Tensor& x) const { return ops::linear_gelu(x, weight, bias); }
  void accumulate_into(Tensor& out, const Tensor& x) const { ops::linear_accumulate_(out, x, weight, bias); }

  // --precision: the weight to `weights` (f32/f16/bf16, or f8 with row scales on a GPU), the bias to
  // the activations' type (ops::activation_dtype), then packed for the backend's GEMM.
  void convert(DType weights, DType activations);
  // Attaches the backend's GEMM layout to the weight (ops::pack_linear_weight); done by convert().
  void pack() { weight = ops::pack_linear_weight(weight); }
};

// Layer norm over the last dimension, statistics in fp32: gamma, beta [features].
struct LayerNorm {
  Tensor gamma;
  Tensor beta;
  float eps = 1e-5f;

  Tensor operator()(const Tensor& x) const { return ops::layer_norm(x, gamma, beta, eps); }
  Tensor operator()(const Tensor& x, DType out_dtype) const {
    return ops::layer_norm(x, gamma, beta, eps, out_dtype);
  }
};

}  // namespace vnp::engine

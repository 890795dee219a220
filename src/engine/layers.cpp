#include "engine/layers.h"

namespace vnp::engine {

void Linear::convert(DType weights, DType activations) {
  if (weight.dtype() != weights) weight = ops::cast(weight, weights);
  if (bias.defined() && bias.dtype() != activations) bias = ops::cast(bias, activations);
  pack();
}

}  // namespace vnp::engine

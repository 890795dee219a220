#include "models/mlp_classifier.h"

#include <algorithm>
#include <cmath>

#include "engine/ops.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {
namespace {

constexpr double kBatchNormEps = 1e-5;  // torch.nn.BatchNorm1d default, as trained

engine::Tensor load_tensor(const weights::StateDict& dict, const std::string& name,
                           const std::vector<std::int64_t>& shape) {
  const weights::Tensor& t = dict.at(name);
  if (t.shape != shape)
    throw ModelError(
        dict.source(), name,
        "shape " + weights::shape_string(t.shape) + ", expected " + weights::shape_string(shape));
  return engine::Tensor::from_floats(dict.to_float32(name), shape);
}

std::int64_t dim_of(const weights::StateDict& dict, const std::string& name, std::size_t axis) {
  const weights::Tensor& t = dict.at(name);
  if (t.shape.size() != 2) throw ModelError(dict.source(), name, "expected a 2-D weight matrix");
  return t.shape[axis];
}

}  // namespace

MlpClassifier MlpClassifier::load(const std::filesystem::path& file) {
  const weights::StateDict dict = weights::load_state_dict(file);
  MlpClassifier m;
  m.source_ = file.string();
  const std::int64_t in = dim_of(dict, "hidden_layer.weight", 1);
  const std::int64_t hidden = dim_of(dict, "hidden_layer.weight", 0);
  const std::int64_t classes = dim_of(dict, "output_layer.weight", 0);
  if (classes != 2) throw ModelError(m.source_, "output_layer.weight", "expected 2 classes (others, virus)");
  m.hidden_weight_ = load_tensor(dict, "hidden_layer.weight", {hidden, in});
  m.hidden_bias_ = load_tensor(dict, "hidden_layer.bias", {hidden});
  m.output_weight_ = load_tensor(dict, "output_layer.weight", {classes, hidden});
  m.output_bias_ = load_tensor(dict, "output_layer.bias", {classes});

  // Eval-mode BatchNorm is an affine map per feature; fold it once (in double).
  const auto gamma = load_tensor(dict, "bn1.weight", {hidden}).to_floats();
  const auto beta = load_tensor(dict, "bn1.bias", {hidden}).to_floats();
  const auto mean = load_tensor(dict, "bn1.running_mean", {hidden}).to_floats();
  const auto var = load_tensor(dict, "bn1.running_var", {hidden}).to_floats();
  std::vector<float> scale(static_cast<std::size_t>(hidden)), shift(static_cast<std::size_t>(hidden));
  for (std::size_t i = 0; i < scale.size(); ++i) {
    const double s = gamma[i] / std::sqrt(static_cast<double>(var[i]) + kBatchNormEps);
    scale[i] = static_cast<float>(s);
    shift[i] = static_cast<float>(beta[i] - mean[i] * s);
  }
  m.bn_scale_ = engine::Tensor::from_floats(scale, {hidden});
  m.bn_shift_ = engine::Tensor::from_floats(shift, {hidden});
  return m;
}

engine::Tensor MlpClassifier::logits(const engine::Tensor& features) const {
  if (features.ndim() != 2 || features.dim(1) != input_dim())
    throw ModelError(source_, "hidden_layer.weight",
                     "classifier expects " + std::to_string(input_dim()) + " input features, got " +
                         engine::shape_str(features.shape()));
  engine::Tensor h = engine::ops::linear(features, hidden_weight_, hidden_bias_);
  float* z = h.data<float>();
  const float* scale = bn_scale_.data<float>();
  const float* shift = bn_shift_.data<float>();
  const std::int64_t n = h.dim(0), hidden = h.dim(1);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < hidden; ++c) {
      float& v = z[r * hidden + c];
      v = std::max(0.0f, v * scale[c] + shift[c]);  // BatchNorm (eval), ReLU; dropout is off in eval
    }
  return engine::ops::linear(h, output_weight_, output_bias_);
}

engine::Tensor MlpClassifier::probabilities(const engine::Tensor& features) const {
  engine::Tensor p = logits(features);
  float* x = p.data<float>();
  const std::int64_t n = p.dim(0), c = p.dim(1);
  for (std::int64_t r = 0; r < n; ++r) {
    float* row = x + r * c;
    const float top = *std::max_element(row, row + c);
    double sum = 0;
    for (std::int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(row[j] - top));
    for (std::int64_t j = 0; j < c; ++j)
      row[j] = static_cast<float>(std::exp(static_cast<double>(row[j] - top)) / sum);
  }
  return p;
}

}  // namespace vnp::models

#include "models/mlp_classifier.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "engine/thread_pool.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::models {
namespace {

constexpr double kBatchNormEps = 1e-5;  // torch.nn.BatchNorm1d default, as trained
constexpr std::int64_t kRowsPerTask = 64;

std::vector<double> load_tensor(const weights::StateDict& dict, const std::string& name,
                                const std::vector<std::int64_t>& shape) {
  const weights::Tensor& t = dict.at(name);
  if (t.shape != shape)
    throw ModelError(
        dict.source(), name,
        "shape " + weights::shape_string(t.shape) + ", expected " + weights::shape_string(shape));
  return dict.to_float64(name);
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
  m.input_dim_ = dim_of(dict, "hidden_layer.weight", 1);
  m.hidden_dim_ = dim_of(dict, "hidden_layer.weight", 0);
  m.num_classes_ = dim_of(dict, "output_layer.weight", 0);
  const std::int64_t in = m.input_dim_, hidden = m.hidden_dim_, classes = m.num_classes_;
  if (classes != 2) throw ModelError(m.source_, "output_layer.weight", "expected 2 classes (others, virus)");
  m.hidden_weight_ = load_tensor(dict, "hidden_layer.weight", {hidden, in});
  m.hidden_bias_ = load_tensor(dict, "hidden_layer.bias", {hidden});
  m.output_weight_ = load_tensor(dict, "output_layer.weight", {classes, hidden});
  m.output_bias_ = load_tensor(dict, "output_layer.bias", {classes});

  // Eval-mode BatchNorm is an affine map per feature; fold it once.
  const auto gamma = load_tensor(dict, "bn1.weight", {hidden});
  const auto beta = load_tensor(dict, "bn1.bias", {hidden});
  const auto mean = load_tensor(dict, "bn1.running_mean", {hidden});
  const auto var = load_tensor(dict, "bn1.running_var", {hidden});
  for (std::size_t i = 0; i < gamma.size(); ++i) {
    const double s = gamma[i] / std::sqrt(var[i] + kBatchNormEps);
    m.bn_scale_.push_back(s);
    m.bn_shift_.push_back(beta[i] - mean[i] * s);
  }
  return m;
}

void MlpClassifier::logits_rows(const float* x, std::int64_t begin, std::int64_t end, float* out) const {
  // Always kRowsPerTask rows per dgemm (a short block is zero-padded): BLAS rounding depends on the
  // call's shape, and a frame's scores must not depend on which frames share its block.
  const std::int64_t rows = kRowsPerTask, in = input_dim_, hidden = hidden_dim_, classes = num_classes_;
  std::vector<double> xd(static_cast<std::size_t>(rows * in), 0.0);
  std::copy(x + begin * in, x + end * in, xd.begin());
  std::vector<double> h(static_cast<std::size_t>(rows * hidden));
  for (std::int64_t r = 0; r < rows; ++r) std::copy_n(hidden_bias_.data(), hidden, h.data() + r * hidden);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(hidden),
              static_cast<int>(in), 1.0, xd.data(), static_cast<int>(in), hidden_weight_.data(),
              static_cast<int>(in), 1.0, h.data(), static_cast<int>(hidden));
  for (std::int64_t r = 0; r < end - begin; ++r) {
    double* hr = h.data() + r * hidden;
    for (std::int64_t j = 0; j < hidden; ++j)  // BatchNorm (eval), ReLU; dropout is off in eval
      hr[j] = std::max(0.0, hr[j] * bn_scale_[j] + bn_shift_[j]);
    for (std::int64_t c = 0; c < classes; ++c) {
      double acc = output_bias_[c];
      for (std::int64_t j = 0; j < hidden; ++j) acc += hr[j] * output_weight_[c * hidden + j];
      out[(begin + r) * classes + c] = static_cast<float>(acc);
    }
  }
}

engine::Tensor MlpClassifier::logits(const engine::Tensor& features) const {
  if (features.ndim() != 2 || features.dim(1) != input_dim_)
    throw ModelError(source_, "hidden_layer.weight",
                     "classifier expects " + std::to_string(input_dim_) + " input features, got " +
                         engine::shape_str(features.shape()));
  const engine::Tensor host = features.to(engine::Device::cpu());
  const std::int64_t n = host.dim(0);
  engine::Tensor out = engine::Tensor::empty({n, num_classes_}, engine::DType::kF32);
  const float* x = host.data<float>();
  float* y = out.data<float>();
  engine::parallel_for(n, kRowsPerTask, [&](std::int64_t b, std::int64_t e) { logits_rows(x, b, e, y); });
  return out;
}

engine::Tensor MlpClassifier::probabilities(const engine::Tensor& features) const {
  engine::Tensor p = logits(features);
  float* x = p.data<float>();
  const std::int64_t n = p.dim(0), c = p.dim(1);
  for (std::int64_t r = 0; r < n; ++r) {
    float* row = x + r * c;
    const double top = *std::max_element(row, row + c);
    double sum = 0;
    for (std::int64_t j = 0; j < c; ++j) sum += std::exp(row[j] - top);
    for (std::int64_t j = 0; j < c; ++j) row[j] = static_cast<float>(std::exp(row[j] - top) / sum);
  }
  return p;
}

}  // namespace vnp::models

#pragma once
// The VirNucPro classifier (reference/models.md §3): Linear -> BatchNorm1d (eval, running stats)
// -> ReLU -> Linear -> softmax over [DNABERT-S mean, ESM-2 mean]. Dimensions come from the checkpoint.
// It runs on the host in double precision: 3.4 MFLOP per frame is small next to the encoders, and
// near-ties (score1 ≈ score2 ≈ 0.5) then get the original's label, which an fp32 GEMM can flip.
#include <filesystem>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace vnp::models {

class MlpClassifier {
 public:
  // The original whole pickled module (300_model.pth / 500_model.pth) or a plain state dict.
  // A missing or mis-shaped tensor is a ModelError naming it.
  static MlpClassifier load(const std::filesystem::path& file);

  std::int64_t input_dim() const { return input_dim_; }
  std::int64_t hidden_dim() const { return hidden_dim_; }
  std::int64_t num_classes() const { return num_classes_; }
  const std::string& source() const { return source_; }

  // Logits [n, num_classes] of features [n, input_dim] (f32, host).
  engine::Tensor logits(const engine::Tensor& features) const;
  // Softmax of the logits: column 0 = P(others) = score1, column 1 = P(virus) = score2.
  engine::Tensor probabilities(const engine::Tensor& features) const;

 private:
  // Logits of rows [begin, end) of x [n, in] into out [n, C].
  void logits_rows(const float* x, std::int64_t begin, std::int64_t end, float* out) const;

  std::string source_;
  std::int64_t input_dim_ = 0, hidden_dim_ = 0, num_classes_ = 0;
  std::vector<double> hidden_weight_, hidden_bias_;  // [H, in], [H]
  std::vector<double> bn_scale_, bn_shift_;          // BatchNorm folded to y = z·scale + shift, [H]
  std::vector<double> output_weight_, output_bias_;  // [C, H], [C]
};

}  // namespace vnp::models

#pragma once
// The VirNucPro classifier (reference/models.md §3): Linear -> BatchNorm1d (eval, running stats)
// -> ReLU -> Linear -> softmax over [DNABERT-S mean, ESM-2 mean]. Dimensions come from the checkpoint.
// It runs on the host: 3.4 MFLOP per frame is small next to the encoders.
#include <filesystem>
#include <string>

#include "engine/tensor.h"

namespace vnp::models {

class MlpClassifier {
 public:
  // The original whole pickled module (300_model.pth / 500_model.pth) or a plain state dict.
  // A missing or mis-shaped tensor is a ModelError naming it.
  static MlpClassifier load(const std::filesystem::path& file);

  std::int64_t input_dim() const { return hidden_weight_.dim(1); }
  std::int64_t hidden_dim() const { return hidden_weight_.dim(0); }
  std::int64_t num_classes() const { return output_weight_.dim(0); }
  const std::string& source() const { return source_; }

  // Logits [n, num_classes] of features [n, input_dim] (f32, host).
  engine::Tensor logits(const engine::Tensor& features) const;
  // Softmax of the logits: column 0 = P(others) = score1, column 1 = P(virus) = score2.
  engine::Tensor probabilities(const engine::Tensor& features) const;

 private:
  std::string source_;
  engine::Tensor hidden_weight_, hidden_bias_;  // [H, in], [H]
  engine::Tensor bn_scale_, bn_shift_;          // BatchNorm folded to y = z·scale + shift, [H]
  engine::Tensor output_weight_, output_bias_;  // [C, H], [C]
};

}  // namespace vnp::models

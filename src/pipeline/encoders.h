#pragma once
// The three models of a run on one device, and the embedding of frames in token-budget batches:
// shared by `predict` and `compare-attention`.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor.h"
#include "models/dnabert2.h"
#include "models/esm2.h"
#include "models/mlp_classifier.h"

namespace vnp::pipeline {

struct ModelPaths {
  std::filesystem::path esm, dnabert, classifier;
};

// Loaded and checked against each other (the classifier's input width) before any compute.
struct Encoders {
  models::Dnabert2 dnabert;
  models::Esm2 esm;
  models::MlpClassifier mlp;

  static Encoders load(const ModelPaths& paths, engine::Device device,
                       engine::DType dtype = engine::DType::kF32);
  std::int64_t dnabert_width() const { return dnabert.config().hidden_size; }
  std::int64_t esm_width() const { return esm.config().hidden; }
};

// --device: "cpu"; "cuda" = every visible GPU; "cuda:0,2" = those GPUs; "auto" = every visible GPU, else
// the CPU. A GPU asked for but absent is a DeviceError.
std::vector<engine::Device> resolve_devices(const std::string& spec);

// --precision for a device: "auto" = fp16 on a GPU, fp32 on the CPU; fp16/bf16 need a GPU.
engine::DType resolve_precision(const std::string& precision, engine::Device device);

// Indices of token-id sequences cut into batches of at most `budget` tokens by first-fit decreasing (a
// sequence longer than the budget forms a batch of its own). Deterministic: depends only on the lengths.
std::vector<std::vector<std::size_t>> pack_first_fit_decreasing(
    const std::vector<std::vector<std::int32_t>>& ids, std::int64_t budget);

// Mean embeddings [n, width] (row-major, host) of DNA / protein strings, computed in batches of at most
// `token_budget` tokens (first-fit decreasing).
std::vector<float> embed_dnabert(const models::Dnabert2& model, const std::vector<std::string_view>& dna,
                                 std::int64_t token_budget);
std::vector<float> embed_esm(const models::Esm2& model, const std::vector<std::string_view>& proteins,
                             std::int64_t token_budget);

// Rows [DNABERT-S | ESM-2] (the classifier's input order) of n frames.
std::vector<float> join_features(const std::vector<float>& dnabert, std::int64_t dnabert_width,
                                 const std::vector<float>& esm, std::int64_t esm_width);

}  // namespace vnp::pipeline

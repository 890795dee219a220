#pragma once
// The three models of a run on one device, and the embedding of frames in token-budget batches:
// shared by `predict` and `compare-attention`.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backend.h"
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
  engine::DType dtype = engine::DType::kF32;  // the encoders' compute type

  static Encoders load(const ModelPaths& paths, engine::Device device,
                       engine::DType dtype = engine::DType::kF32);
  std::int64_t dnabert_width() const { return dnabert.config().hidden_size; }
  std::int64_t esm_width() const { return esm.config().hidden; }
};

// --device: "cpu"; "cuda" = every visible GPU; "cuda:0,2" = those GPUs; "auto" = every visible GPU, else
// the CPU. A GPU asked for but absent is a DeviceError.
std::vector<engine::Device> resolve_devices(const std::string& spec);

// --precision for a device: "auto" = fp16 on a GPU; on the CPU bf16 where it has AMX-BF16, else fp32.
// bf16 on a CPU without bf16 instructions is a DeviceError; fp16/fp8 need a GPU.
engine::DType resolve_precision(const std::string& precision, engine::Device device);
// For the log: "f32", "f16", ...; on the CPU "bf16 (AMX-BF16 products, fp32 elsewhere)".
std::string precision_description(engine::DType dtype, engine::Device device);

// Default tokens per encoder batch (--token-budget), from the device's free memory once the models are
// loaded. Activation bytes per token of one encoder layer in the compute type: the tensors live at once
// (residual x, layer-norm output, q, k, v, attention output: 6 x hidden; the FFN's first output, `ffn`
// wide) plus the f32 pooled rows (hidden, counted per token: the worst case of short sequences).
std::int64_t activation_bytes_per_token(std::int64_t hidden, std::int64_t ffn, engine::DType dtype);
// The same for one model (DNABERT-S's gated FFN's first output is 2 x intermediate wide), and the larger
// of ESM-2's and DNABERT-S's.
std::int64_t activation_bytes_per_token(const models::Esm2& esm, engine::DType dtype);
std::int64_t activation_bytes_per_token(const models::Dnabert2& dnabert, engine::DType dtype);
std::int64_t activation_bytes_per_token(const Encoders& encoders);
// The budget for a device with `memory` free: at most half of it (the other half for what the estimate
// leaves out: GEMM workspaces, the allocator's size classes, the v1 path's score matrices), rounded down
// to a multiple of 1,024, within [4,096, 65,536] (at 65,536 tokens cuBLASLt's GEMMs are at their peak
// already; more only costs memory). Unknown memory (0) gives 4,096. The CPU: 4,096 (a cache-friendly
// size) whatever its memory. The one place the default is decided.
std::int64_t token_budget_for_memory(engine::Device device, const engine::Backend::MemoryInfo& memory,
                                     std::int64_t bytes_per_token);
// token_budget_for_memory with the device's free memory now.
std::int64_t default_token_budget(engine::Device device, std::int64_t bytes_per_token);
// The smallest default over loaded replicas (one per device).
std::int64_t default_token_budget(const std::vector<const Encoders*>& replicas);

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

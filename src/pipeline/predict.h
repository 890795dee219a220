#pragma once
// `virnucpro predict`: reader -> chunker -> six-frame -> DNABERT-S and ESM-2 batches -> classifier ->
// ordered writer (DESIGN.md "Data flow"). Settings come resolved from the command line.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace vnp::pipeline {

// --shard I/N: the records with index ≡ I (mod N), counted over all inputs in order.
struct Shard {
  int index = 0;
  int count = 1;
};

struct PredictOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path output_dir;
  int model_type = 500;                                        // -m: picks the classifier
  int chunk_size = 500;                                        // -m or --expected-length
  std::filesystem::path esm_model, dnabert_model, classifier;  // resolved locations
  std::string device = "auto";                                 // auto | cpu | cuda | cuda:0,1
  std::string precision = "auto";                              // auto | fp32 | fp16 | bf16 | fp8
  bool v1_attention = false;
  bool packing = true;
  std::int64_t token_budget = 0;  // tokens per encoder batch; 0 = the device's default
  int threads = 1;
  bool resume = false;
  bool force = false;
  std::optional<Shard> shard;
  bool keep_intermediate = false;
  bool save_embeddings = false;
  std::optional<double> min_score;  // --min-score: a chunk is viral when its best P(virus) >= it
  std::uint64_t min_length = 0;     // --min-length: shorter records are reported too_short, not scored
  std::string command_line;         // as typed, for run.json
};

// Runs the whole prediction; throws vnp::Error subclasses (SPEC §8) on failure.
void run_predict(const PredictOptions& options);

}  // namespace vnp::pipeline

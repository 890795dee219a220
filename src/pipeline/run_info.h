#pragma once
// run.json (SPEC §4): version, command line, settings, model files with sizes and SHA-256, device,
// counts and stage timings of one `predict` run.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/predict.h"
#include "pipeline/results.h"

namespace vnp::pipeline {

struct RunCounters {
  std::uint64_t records = 0;
  std::uint64_t chunks = 0;
  std::uint64_t frames = 0;  // scored frames
  std::uint64_t dnabert_tokens = 0;
  std::uint64_t esm_tokens = 0;
};

class RunInfo {
 public:
  explicit RunInfo(const PredictOptions& options) : options_(options) {}

  // Records the seconds since `since` under `name`.
  void add_stage(const std::string& name, std::chrono::steady_clock::time_point since);
  // Writes run.json atomically.
  void write(const std::filesystem::path& path, const std::string& device,
             const std::string& fingerprint) const;

  RunCounters counters;
  CallCounts calls;  // sequences by call, once the results are published
  // Tokens per encoder batch this run used: --token-budget, or the default the devices' free memory
  // gave. Outside "settings": the default may differ between runs and shards without changing results
  // beyond rounding, so neither the resume fingerprint nor merge's comparison of settings includes it.
  std::int64_t token_budget_used = 0;

 private:
  const PredictOptions& options_;
  std::vector<std::pair<std::string, double>> stages_;
};

// The settings of a run as run.json records them (merge compares them across shards).
nlohmann::json settings_json(const PredictOptions& options);

// Regular files of a model (the file itself, or every file of a model folder) with size and SHA-256.
// Hashes are cached by path, size and modification time, so a multi-GB model is hashed once.
struct ModelFile {
  std::string path;
  std::uintmax_t size = 0;
  std::string sha256;
};
std::vector<ModelFile> describe_model_files(const std::filesystem::path& model);

}  // namespace vnp::pipeline

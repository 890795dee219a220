#pragma once
// `virnucpro compare-attention` (SPEC §5): ESM-2 with the packed attention path and with the
// v1.0-compatible padded path on the same frames; how far the embeddings and the classifier's calls
// differ, and which path to use.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/encoders.h"

namespace vnp::pipeline {

struct CompareOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path output_dir;
  int chunk_size = 500;
  ModelPaths models;
  std::string device = "auto";  // every device of the list, through the scheduler
  std::string precision = "auto";
  std::int64_t token_budget = 0;
  bool packing = true;
  int threads = 1;
};

// Running totals over the compared frames.
struct DivergenceSummary {
  std::uint64_t frames = 0;
  double min_cosine = 1, sum_cosine = 0;
  double max_abs_diff = 0, sum_mean_abs_diff = 0;
  std::uint64_t label_agreements = 0;
  double max_score2_diff = 0;
  // For the Pearson correlation of score2 between the paths.
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;

  void add(double cosine, double max_abs, double mean_abs, float score2_packed, float score2_v1, bool agree);
  double agreement() const;  // fraction of frames with the same label
  double pearson() const;
  // SPEC §5: >= 99 % agreement -> packed; 95-99 % -> validate further; < 95 % -> --v1-attention.
  std::string decision() const;
};

// Per-frame numbers of one ESM-2 embedding pair: cosine, max and mean |difference|.
struct EmbeddingDivergence {
  double cosine = 0, max_abs_diff = 0, mean_abs_diff = 0;
};
EmbeddingDivergence compare_embeddings(const float* a, const float* b, std::int64_t width);

// Runs both paths over the inputs; writes divergence.tsv and divergence.json into options.output_dir and
// returns the summary (the command prints it).
DivergenceSummary run_compare_attention(const CompareOptions& options);

}  // namespace vnp::pipeline

#pragma once
// The model options shared by `predict`, `compare-attention` and `models list|check`: --esm-model,
// --dnabert-model,
// --classifier and -m, resolved through flags, environment variables and caches (SPEC §6).
#include <CLI/CLI.hpp>

#include <string>

#include "pipeline/encoders.h"

namespace vnp::cli {

struct ModelOptions {
  std::string esm, dnabert, classifier;
  int model_type = 500;  // picks the classifier (and the chunk size)
};

// -m plus the three model paths.
void add_model_options(CLI::App& sub, ModelOptions& options);
// --esm-model, --dnabert-model and --classifier alone.
void add_model_path_options(CLI::App& sub, ModelOptions& options);

// Finds all three models before any compute; a missing one is a ModelError saying where it looked.
pipeline::ModelPaths resolve_models(const ModelOptions& options);

}  // namespace vnp::cli

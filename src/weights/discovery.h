#pragma once
// Where the three models are (SPEC §6): flag, environment variable, Hugging Face cache snapshots,
// $TORCH_HOME/hub/checkpoints. Nothing is downloaded; a miss says where we looked and how to fetch.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace vnp::weights {

enum class ModelKind { Esm2, Dnabert, Classifier300, Classifier500 };
const char* model_kind_name(ModelKind kind);  // "esm2", "dnabert", "classifier_300", "classifier_500"

struct ModelLocation {
  std::filesystem::path path;  // a file or a Hugging Face folder
  std::string found_by;        // "flag", "VIRNUCPRO_ESM_MODEL", "huggingface cache", "torch hub"
};

// Candidate places in search order, each with how it was chosen; used by find_model and `models list`.
std::vector<ModelLocation> model_search_places(
    ModelKind kind, const std::optional<std::filesystem::path>& flag = std::nullopt);

// The first existing place. A flag or variable naming a missing path is a ModelError at once (it is
// not silently skipped). A miss is a ModelError listing every place looked at and the download command.
ModelLocation find_model(ModelKind kind, const std::optional<std::filesystem::path>& flag = std::nullopt);

// The shell command that fetches the published model.
std::string download_hint(ModelKind kind);

// What a state dict holds, from its tensor names: "esm2", "dnabert2", "mlp_classifier", "unknown".
class StateDict;
std::string detect_model_kind(const StateDict& dict);

}  // namespace vnp::weights

#pragma once
// Where the three models are (SPEC §6): flag, environment variable, Hugging Face cache snapshots,
// $TORCH_HOME/hub/checkpoints, the working directory and ~/.cache/virnucpro (classifiers). Nothing is
// downloaded here (weights/download.h does that); a miss says where we looked and how to fetch.
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

// The shell commands that fetch the published model: `virnucpro models download …`, and the
// `hf download … --include …` (or curl) alternative.
std::string download_hint(ModelKind kind);

// The Hugging Face Hub repository of ESM-2 / DNABERT-S ("" for a classifier), and a classifier's
// file name in the original repository ("300_model.pth", "" for the encoders).
const char* hub_repo(ModelKind kind);
const char* classifier_file_name(ModelKind kind);
// The original repository's files, where the classifiers are fetched from.
inline constexpr const char* kClassifierBaseUrl =
    "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/main";

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path hub_cache_dir();
// $XDG_CACHE_HOME/virnucpro, else ~/.cache/virnucpro.
std::filesystem::path virnucpro_cache_dir();
// The cache folder of a Hub repository: "facebook/esm2_t36_3B_UR50D" ->
// "models--facebook--esm2_t36_3B_UR50D".
std::string hub_repo_folder(const std::string& repo);

// Where a found model came from, for `models check`: "facebook/esm2_t36_3B_UR50D, revision main
// (commit 1a2b…)" for a Hub snapshot, the URL of a downloaded classifier, "" when not known.
std::string model_origin(const ModelLocation& location);

// A cheap look at what a path holds before any weights are loaded: a folder's config.json
// (model_type "esm" or "bert"), a folder given for a classifier. Returns "" when it fits `kind`,
// else the problem, e.g. "this is DNABERT-S, not ESM-2".
std::string model_kind_mismatch(ModelKind kind, const std::filesystem::path& path);

// What a state dict holds, from its tensor names: "esm2", "dnabert2", "mlp_classifier", "unknown".
class StateDict;
std::string detect_model_kind(const StateDict& dict);

}  // namespace vnp::weights

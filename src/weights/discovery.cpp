#include "weights/discovery.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/env.h"
#include "util/error.h"
#include "weights/state_dict.h"

namespace vnp::weights {

namespace fs = std::filesystem;

namespace {

struct KindInfo {
  const char* name;
  const char* env_var;
  const char* hf_repo;     // "" when not on the Hugging Face hub
  const char* torch_file;  // "" when not a torch hub checkpoint
  const char* local_file;  // the original tool's file name in the working directory
  const char* label;       // what a person calls it
  const char* download;    // the `virnucpro models download` arguments
};

const KindInfo& info(ModelKind kind) {
  static const KindInfo kEsm{
      "esm2", "VIRNUCPRO_ESM_MODEL", "facebook/esm2_t36_3B_UR50D", "esm2_t36_3B_UR50D.pt", "", "ESM-2",
      "esm"};
  static const KindInfo kDnabert{
      "dnabert", "VIRNUCPRO_DNABERT_MODEL", "zhihan1996/DNABERT-S", "", "", "DNABERT-S", "dnabert"};
  static const KindInfo k300{"classifier_300",        "VIRNUCPRO_CLASSIFIER_300", "", "", "300_model.pth",
                             "the 300 bp classifier", "classifier -m 300"};
  static const KindInfo k500{"classifier_500",        "VIRNUCPRO_CLASSIFIER_500", "", "", "500_model.pth",
                             "the 500 bp classifier", "classifier -m 500"};
  switch (kind) {
    case ModelKind::Esm2:
      return kEsm;
    case ModelKind::Dnabert:
      return kDnabert;
    case ModelKind::Classifier300:
      return k300;
    case ModelKind::Classifier500:
      return k500;
  }
  return kEsm;
}

fs::path home() {
  auto h = env::get("HOME");
  return h ? fs::path(*h) : fs::path("/");
}

fs::path torch_hub_checkpoints() {
  if (auto v = env::get("TORCH_HOME")) return fs::path(*v) / "hub" / "checkpoints";
  return home() / ".cache" / "torch" / "hub" / "checkpoints";
}

bool holds_weights(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                        "pytorch_model.bin.index.json"}) {
    if (fs::exists(dir / f, ec)) return true;
  }
  return false;
}

// Snapshots of one hub repo: the one refs/main names first, then the others, newest first.
std::vector<fs::path> hf_snapshots(const std::string& repo) {
  const fs::path root = hub_cache_dir() / hub_repo_folder(repo);
  std::vector<fs::path> out;
  std::error_code ec;
  std::string main_ref;
  if (std::ifstream ref(root / "refs" / "main"); ref) std::getline(ref, main_ref);
  if (!main_ref.empty() && fs::is_directory(root / "snapshots" / main_ref, ec))
    out.push_back(root / "snapshots" / main_ref);
  std::vector<std::pair<fs::file_time_type, fs::path>> others;
  for (fs::directory_iterator it(root / "snapshots", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec) && it->path().filename() != main_ref)
      others.emplace_back(it->last_write_time(ec), it->path());
  }
  std::sort(others.begin(), others.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [t, p] : others) out.push_back(p);
  if (out.empty()) out.push_back(root / "snapshots" / "*");  // reported as looked-at
  return out;
}

}  // namespace

const char* model_kind_name(ModelKind kind) {
  return info(kind).name;
}

const char* hub_repo(ModelKind kind) {
  return info(kind).hf_repo;
}

const char* classifier_file_name(ModelKind kind) {
  return info(kind).local_file;
}

fs::path hub_cache_dir() {
  if (auto v = env::get("HF_HUB_CACHE")) return *v;
  if (auto v = env::get("HF_HOME")) return fs::path(*v) / "hub";
  return home() / ".cache" / "huggingface" / "hub";
}

fs::path virnucpro_cache_dir() {
  if (auto v = env::get("XDG_CACHE_HOME")) return fs::path(*v) / "virnucpro";
  return home() / ".cache" / "virnucpro";
}

std::string hub_repo_folder(const std::string& repo) {
  std::string folder = repo;
  if (const auto slash = folder.find('/'); slash != std::string::npos) folder.replace(slash, 1, "--");
  return "models--" + folder;
}

std::vector<ModelLocation> model_search_places(ModelKind kind, const std::optional<fs::path>& flag) {
  const KindInfo& k = info(kind);
  std::vector<ModelLocation> places;
  if (flag) places.push_back({*flag, "flag"});
  if (auto v = env::get(k.env_var)) places.push_back({*v, k.env_var});
  if (*k.hf_repo) {
    for (const fs::path& snap : hf_snapshots(k.hf_repo)) places.push_back({snap, "huggingface cache"});
  }
  if (*k.torch_file) places.push_back({torch_hub_checkpoints() / k.torch_file, "torch hub"});
  if (*k.local_file) {
    places.push_back({fs::path(k.local_file), "working directory"});
    places.push_back({virnucpro_cache_dir() / k.local_file, "virnucpro cache"});
  }
  return places;
}

std::string download_hint(ModelKind kind) {
  const KindInfo& k = info(kind);
  std::string hint = std::string("virnucpro models download ") + k.download + "  (or: ";
  switch (kind) {
    case ModelKind::Esm2:
      return hint +
             "hf download facebook/esm2_t36_3B_UR50D --include config.json --include vocab.txt --include "
             "'pytorch_model*')";
    case ModelKind::Dnabert:
      return hint +
             "hf download zhihan1996/DNABERT-S --include config.json --include tokenizer.json --include "
             "pytorch_model.bin)";
    case ModelKind::Classifier300:
    case ModelKind::Classifier500:
      return hint + "curl -L --create-dirs -o ~/.cache/virnucpro/" + k.local_file + " " + kClassifierBaseUrl +
             "/" + k.local_file + ")";
  }
  return hint;
}

std::string model_origin(const ModelLocation& location) {
  // A Hub snapshot: HUB/models--ORG--NAME/snapshots/COMMIT; the refs naming COMMIT are its revisions.
  const fs::path snapshot = location.path.has_filename() ? location.path : location.path.parent_path();
  const fs::path repo_root = snapshot.parent_path().parent_path();
  const std::string folder = repo_root.filename().string();
  if (snapshot.parent_path().filename() == "snapshots" && folder.starts_with("models--")) {
    std::string repo = folder.substr(8);
    if (const auto sep = repo.find("--"); sep != std::string::npos) repo.replace(sep, 2, "/");
    const std::string commit = snapshot.filename().string();
    std::string revisions;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(repo_root / "refs", ec), end; !ec && it != end;
         it.increment(ec)) {
      std::string ref;
      if (it->is_regular_file(ec) && std::getline(std::ifstream(it->path()) >> std::ws, ref) && ref == commit)
        revisions +=
            (revisions.empty() ? "" : ", ") + fs::relative(it->path(), repo_root / "refs", ec).string();
    }
    return repo + ", revision " + (revisions.empty() ? commit : revisions + " (commit " + commit + ")");
  }
  // A downloaded classifier: its .source.json says where from.
  try {
    std::ifstream in(location.path.string() + ".source.json");
    if (in) return nlohmann::json::parse(in).at("url").get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return "";
}

std::string model_kind_mismatch(ModelKind kind, const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return "";
  std::string model_type;
  try {
    std::ifstream in(path / "config.json");
    if (in) model_type = nlohmann::json::parse(in).value("model_type", "");
  } catch (const nlohmann::json::exception&) {
    return "";  // the loader reports a broken config.json
  }
  const char* holds = model_type == "esm" ? "ESM-2" : model_type == "bert" ? "DNABERT-S" : nullptr;
  const bool classifier = kind == ModelKind::Classifier300 || kind == ModelKind::Classifier500;
  if (classifier)
    return std::string("this is a model folder") + (holds ? std::string(" (") + holds + ")" : "") +
           ", not the VirNucPro classifier (a .pth file)";
  if (holds && holds != std::string(info(kind).label))
    return std::string("this is ") + holds + ", not " + info(kind).label + " (config.json has model_type \"" +
           model_type + "\")";
  return "";
}

ModelLocation find_model(ModelKind kind, const std::optional<fs::path>& flag) {
  std::error_code ec;
  std::string looked;
  for (const ModelLocation& place : model_search_places(kind, flag)) {
    const bool explicit_choice = place.found_by == "flag" || place.found_by == info(kind).env_var;
    const bool found =
        place.found_by == "huggingface cache" ? holds_weights(place.path) : fs::exists(place.path, ec);
    if (found) {
      if (const std::string problem = model_kind_mismatch(kind, place.path); !problem.empty())
        throw ModelError(place.path.string(), "", problem + " (given by " + place.found_by + ")");
      return place;
    }
    if (explicit_choice) {
      throw ModelError(place.path.string(), "",
                       std::string("does not exist (given by ") + place.found_by + ")");
    }
    looked += (looked.empty() ? "" : ", ") + place.path.string();
  }
  throw ModelError(std::string("no ") + model_kind_name(kind) + " model found; looked in: " + looked +
                   "; set " + info(kind).env_var + " or fetch it with: " + download_hint(kind));
}

std::string detect_model_kind(const StateDict& dict) {
  bool esm = false, dnabert = false, mlp_hidden = false, mlp_out = false;
  for (const std::string& n : dict.names()) {
    if (n.find("attention.self.Wqkv.weight") != std::string::npos) dnabert = true;
    if (n.ends_with("embed_tokens.weight") || n.find("esm.embeddings.word_embeddings") != std::string::npos ||
        n.find("rotary_embeddings.inv_freq") != std::string::npos ||
        n.find("rot_emb.inv_freq") != std::string::npos) {
      esm = true;
    }
    if (n == "hidden_layer.weight") mlp_hidden = true;
    if (n == "output_layer.weight") mlp_out = true;
  }
  if (dnabert) return "dnabert2";
  if (esm) return "esm2";
  if (mlp_hidden && mlp_out) return "mlp_classifier";
  return "unknown";
}

}  // namespace vnp::weights

#include "weights/discovery.h"

#include <algorithm>
#include <fstream>

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
};

const KindInfo& info(ModelKind kind) {
  static const KindInfo kEsm{"esm2", "VIRNUCPRO_ESM_MODEL", "facebook/esm2_t36_3B_UR50D",
                             "esm2_t36_3B_UR50D.pt", ""};
  static const KindInfo kDnabert{"dnabert", "VIRNUCPRO_DNABERT_MODEL", "zhihan1996/DNABERT-S", "", ""};
  static const KindInfo k300{"classifier_300", "VIRNUCPRO_CLASSIFIER_300", "", "", "300_model.pth"};
  static const KindInfo k500{"classifier_500", "VIRNUCPRO_CLASSIFIER_500", "", "", "500_model.pth"};
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

fs::path hf_hub_dir() {
  if (auto v = env::get("HF_HUB_CACHE")) return *v;
  if (auto v = env::get("HF_HOME")) return fs::path(*v) / "hub";
  return home() / ".cache" / "huggingface" / "hub";
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
  std::string folder = "models--" + repo;
  std::replace(folder.begin(), folder.end(), '/', '-');
  folder.replace(folder.find('-', 8), 1, "--");  // models--ORG--NAME
  const fs::path root = hf_hub_dir() / folder;
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

std::vector<ModelLocation> model_search_places(ModelKind kind, const std::optional<fs::path>& flag) {
  const KindInfo& k = info(kind);
  std::vector<ModelLocation> places;
  if (flag) places.push_back({*flag, "flag"});
  if (auto v = env::get(k.env_var)) places.push_back({*v, k.env_var});
  if (*k.hf_repo) {
    for (const fs::path& snap : hf_snapshots(k.hf_repo)) places.push_back({snap, "huggingface cache"});
  }
  if (*k.torch_file) places.push_back({torch_hub_checkpoints() / k.torch_file, "torch hub"});
  if (*k.local_file) places.push_back({fs::path(k.local_file), "working directory"});
  return places;
}

std::string download_hint(ModelKind kind) {
  switch (kind) {
    case ModelKind::Esm2:
      return "huggingface-cli download facebook/esm2_t36_3B_UR50D  (or: wget -P "
             "~/.cache/torch/hub/checkpoints "
             "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t36_3B_UR50D.pt)";
    case ModelKind::Dnabert:
      return "huggingface-cli download zhihan1996/DNABERT-S";
    case ModelKind::Classifier300:
    case ModelKind::Classifier500:
      return std::string("git clone https://github.com/Li-Jing-1997/VirNucPro && export ") +
             info(kind).env_var + "=$PWD/VirNucPro/" + info(kind).local_file;
  }
  return "";
}

ModelLocation find_model(ModelKind kind, const std::optional<fs::path>& flag) {
  std::error_code ec;
  std::string looked;
  for (const ModelLocation& place : model_search_places(kind, flag)) {
    const bool explicit_choice = place.found_by == "flag" || place.found_by == info(kind).env_var;
    const bool found =
        place.found_by == "huggingface cache" ? holds_weights(place.path) : fs::exists(place.path, ec);
    if (found) return place;
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

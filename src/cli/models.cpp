// virnucpro models list|check|inspect|download: find, verify, describe and fetch weights (SPEC §1, §6).
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_options.h"
#include "util/error.h"
#include "util/log.h"
#include "weights/discovery.h"
#include "weights/download.h"
#include "weights/state_dict.h"

namespace vnp::cli {
namespace {

using weights::ModelKind;

struct ModelsOptions {
  std::string inspect_path;
  bool json = false;
  ModelOptions paths;  // --esm-model, --dnabert-model, --classifier (for the -m classifier), as predict
  std::string classifier_300, classifier_500;
  // download
  std::string what;  // esm, dnabert, classifier, all; "" = what `predict -m <chunk_length>` needs
  int chunk_length = 500;
  std::string cache_dir, revision = "main";
};

std::optional<std::filesystem::path> flag_of(ModelKind kind, const ModelsOptions& o) {
  const int type = kind == ModelKind::Classifier300 ? 300 : 500;
  const std::string& numbered = type == 300 ? o.classifier_300 : o.classifier_500;
  const std::string& v = kind == ModelKind::Esm2      ? o.paths.esm
                         : kind == ModelKind::Dnabert ? o.paths.dnabert
                         : !numbered.empty()          ? numbered
                         : o.paths.model_type == type ? o.paths.classifier
                                                      : numbered;
  if (v.empty()) return std::nullopt;
  return std::filesystem::path(v);
}

void inspect(const ModelsOptions& o) {
  const weights::StateDict dict = weights::load_state_dict(o.inspect_path);
  const std::string kind = weights::detect_model_kind(dict);
  if (o.json) {
    nlohmann::ordered_json j;
    j["format"] = dict.format();
    j["kind"] = kind;
    j["tensors"] = nlohmann::ordered_json::array();
    for (const std::string& name : dict.names()) {
      const weights::Tensor& t = dict.at(name);
      j["tensors"].push_back({{"name", name}, {"dtype", weights::dtype_name(t.dtype)}, {"shape", t.shape}});
    }
    std::cout << j.dump(2) << '\n';
    return;
  }
  int64_t params = 0;
  for (const std::string& name : dict.names()) params += dict.at(name).numel();
  std::cout << "file:    " << dict.source() << "\nformat:  " << dict.format() << "\nkind:    " << kind
            << "\ntensors: " << dict.size() << " (" << params << " values)\n";
  for (const std::string& name : dict.names()) {
    const weights::Tensor& t = dict.at(name);
    std::cout << name << '\t' << weights::dtype_name(t.dtype) << '\t' << weights::shape_string(t.shape)
              << '\n';
  }
}

const std::vector<ModelKind> kAllKinds = {ModelKind::Esm2, ModelKind::Dnabert, ModelKind::Classifier300,
                                          ModelKind::Classifier500};

void list(const ModelsOptions& o) {
  for (ModelKind kind : kAllKinds) {
    std::cout << weights::model_kind_name(kind) << ":\n";
    for (const auto& place : weights::model_search_places(kind, flag_of(kind, o))) {
      std::error_code ec;
      std::cout << "  " << (std::filesystem::exists(place.path, ec) ? "found   " : "missing ")
                << place.path.string() << "  (" << place.found_by << ")\n";
    }
  }
}

// The shape each published model must have; a wrong or partial file is reported here, before any run.
std::string check_shapes(ModelKind kind, const weights::StateDict& d) {
  const std::string kind_name = weights::detect_model_kind(d);
  auto shape_of = [&](const std::vector<std::string>& candidates) -> std::vector<int64_t> {
    for (const auto& n : candidates)
      if (const weights::Tensor* t = d.find(n)) return t->shape;
    return {};
  };
  switch (kind) {
    case ModelKind::Esm2: {
      if (kind_name != "esm2") return "holds " + kind_name + " tensors, not ESM-2";
      auto emb = shape_of({"esm.embeddings.word_embeddings.weight",
                           "encoder.sentence_encoder.embed_tokens.weight", "embed_tokens.weight"});
      if (emb != std::vector<int64_t>{33, 2560})
        return "embeddings are " + weights::shape_string(emb) + ", the 3B model has [33, 2560]";
      return "";
    }
    case ModelKind::Dnabert: {
      if (kind_name != "dnabert2") return "holds " + kind_name + " tensors, not DNABERT-S";
      auto emb = shape_of({"embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"});
      if (emb != std::vector<int64_t>{4096, 768})
        return "embeddings are " + weights::shape_string(emb) + ", DNABERT-S has [4096, 768]";
      return "";
    }
    case ModelKind::Classifier300:
    case ModelKind::Classifier500: {
      if (kind_name != "mlp_classifier")
        return "holds " + kind_name + " tensors, not the VirNucPro classifier";
      auto w = shape_of({"hidden_layer.weight"});
      if (w.size() != 2 || w[1] != 768 + 2560)
        return "hidden_layer.weight is " + weights::shape_string(w) + ", expected [*, 3328]";
      return "";
    }
  }
  return "";
}

void check(const ModelsOptions& o) {
  int problems = 0;
  for (ModelKind kind : kAllKinds) {
    const std::string name = weights::model_kind_name(kind);
    try {
      const weights::ModelLocation where = weights::find_model(kind, flag_of(kind, o));
      const weights::StateDict dict = weights::load_state_dict(where.path);
      const std::string problem = check_shapes(kind, dict);
      const std::string origin = weights::model_origin(where);
      if (problem.empty()) {
        std::cout << "ok       " << name << "  " << where.path.string() << "  (" << dict.format() << ", "
                  << dict.size() << " tensors, found by " << where.found_by
                  << (origin.empty() ? "" : "; from " + origin) << ")\n";
      } else {
        ++problems;
        std::cout << "wrong    " << name << "  " << where.path.string() << ": " << problem
                  << (origin.empty() ? "" : " (from " + origin + ")") << '\n';
      }
    } catch (const ModelError& e) {
      ++problems;
      std::cout << "missing  " << name << ": " << e.what() << '\n';
    }
  }
  if (problems) throw ModelError(std::to_string(problems) + " of 4 models missing or wrong (see above)");
}

std::vector<ModelKind> kinds_to_download(const ModelsOptions& o) {
  const ModelKind classifier = o.chunk_length == 300 ? ModelKind::Classifier300 : ModelKind::Classifier500;
  if (o.what == "esm") return {ModelKind::Esm2};
  if (o.what == "dnabert") return {ModelKind::Dnabert};
  if (o.what == "classifier") return {classifier};
  if (o.what == "all") return kAllKinds;
  return {ModelKind::Esm2, ModelKind::Dnabert, classifier};
}

std::string gigabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, bytes >= 100'000'000 ? "%.1f GB" : "%.2f MB",
                bytes >= 100'000'000 ? bytes / 1e9 : bytes / 1e6);
  return buf;
}

// Fetches each model, one result line per model on stdout; stops at the first failure (a rerun resumes).
void download(const ModelsOptions& o) {
  weights::DownloadOptions d;
  d.hub_cache = o.cache_dir.empty() ? weights::hub_cache_dir() : std::filesystem::path(o.cache_dir);
  d.classifier_dir = weights::virnucpro_cache_dir();
  d.revision = o.revision;
  d.progress_bar = ::isatty(STDERR_FILENO) && spdlog::get_level() <= spdlog::level::info;
  for (ModelKind kind : kinds_to_download(o)) {
    const weights::DownloadResult r = weights::download_model(kind, d);
    std::string from = r.source;
    if (!r.commit.empty())
      from += ", revision " + r.revision + (r.revision == r.commit ? "" : " (commit " + r.commit + ")");
    std::cout << "ok  " << weights::model_kind_name(kind) << "  " << from << ": " << r.files
              << (r.files == 1 ? " file, " : " files, ") << gigabytes(r.bytes_total)
              << (r.bytes_fetched == 0 ? ", already there" : ", " + gigabytes(r.bytes_fetched) + " fetched")
              << "  -> " << r.path.string() << std::endl;
  }
  if (!o.cache_dir.empty() && std::filesystem::path(o.cache_dir) != weights::hub_cache_dir())
    log::warn(
        "{} is not where predict looks: set HF_HUB_CACHE={} (or pass the snapshot folders to --esm-model "
        "and --dnabert-model)",
        o.cache_dir, o.cache_dir);
}

CommandAction setup(CLI::App& app, const GlobalOptions&) {
  auto opts = std::make_shared<ModelsOptions>();
  CLI::App* models = app.add_subcommand("models", "Find, verify and describe model weights");
  models->require_subcommand(1);
  CLI::App* ins =
      models->add_subcommand("inspect", "Tensor names, dtypes and shapes of a checkpoint file or folder");
  ins->add_option("path", opts->inspect_path, "Checkpoint file or model folder")->required();
  ins->add_flag("--json", opts->json, "JSON output: {format, kind, tensors: [{name, dtype, shape}]}");
  CLI::App* lst = models->add_subcommand("list", "Where each model is looked for, and what exists");
  CLI::App* chk = models->add_subcommand("check", "Find the models, load them and verify their shapes");
  for (CLI::App* sub : {lst, chk}) {
    add_model_options(*sub, opts->paths);
    sub->add_option("--classifier-300", opts->classifier_300, "300 bp classifier (.pth)");
    sub->add_option("--classifier-500", opts->classifier_500, "500 bp classifier (.pth)");
  }
  CLI::App* dl = models->add_subcommand(
      "download",
      "Fetch the published models (default: what `predict -m 500` needs) into the caches predict searches");
  dl->add_option("what", opts->what, "esm, dnabert, classifier or all")
      ->check(CLI::IsMember({"esm", "dnabert", "classifier", "all"}));
  dl->add_option("-m,--chunk-length", opts->chunk_length, "Which classifier: 300 or 500")
      ->check(CLI::IsMember({300, 500}));
  dl->add_option("--cache-dir", opts->cache_dir,
                 "Hugging Face cache for ESM-2 and DNABERT-S (default $HF_HUB_CACHE, $HF_HOME/hub or "
                 "~/.cache/huggingface/hub)");
  dl->add_option("--revision", opts->revision, "Branch, tag or commit of the Hub repositories")
      ->capture_default_str();
  return [opts, ins, lst, chk, dl]() {
    if (ins->parsed()) inspect(*opts);
    if (lst->parsed()) list(*opts);
    if (chk->parsed()) check(*opts);
    if (dl->parsed()) download(*opts);
  };
}

VNP_REGISTER_COMMAND("models", setup);

}  // namespace
}  // namespace vnp::cli

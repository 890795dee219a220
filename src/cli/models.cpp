// virnucpro models list|check|inspect: find, verify and describe weights (SPEC §1, §6).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_options.h"
#include "util/error.h"
#include "weights/discovery.h"
#include "weights/state_dict.h"

namespace vnp::cli {
namespace {

using weights::ModelKind;

struct ModelsOptions {
  std::string inspect_path;
  bool json = false;
  ModelOptions paths;  // --esm-model, --dnabert-model, --classifier (for the -m classifier), as predict
  std::string classifier_300, classifier_500;
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
      if (problem.empty()) {
        std::cout << "ok       " << name << "  " << where.path.string() << "  (" << dict.format() << ", "
                  << dict.size() << " tensors, found by " << where.found_by << ")\n";
      } else {
        ++problems;
        std::cout << "wrong    " << name << "  " << where.path.string() << ": " << problem << '\n';
      }
    } catch (const ModelError& e) {
      ++problems;
      std::cout << "missing  " << name << ": " << e.what() << '\n';
    }
  }
  if (problems) throw ModelError(std::to_string(problems) + " of 4 models missing or wrong (see above)");
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
  return [opts, ins, lst, chk]() {
    if (ins->parsed()) inspect(*opts);
    if (lst->parsed()) list(*opts);
    if (chk->parsed()) check(*opts);
  };
}

VNP_REGISTER_COMMAND("models", setup);

}  // namespace
}  // namespace vnp::cli

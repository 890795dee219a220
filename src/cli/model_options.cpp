#include "cli/model_options.h"

#include "weights/discovery.h"

namespace vnp::cli {
namespace {

std::optional<std::filesystem::path> flag_path(const std::string& value) {
  if (value.empty()) return std::nullopt;
  return std::filesystem::path(value);
}

}  // namespace

void add_model_options(CLI::App& sub, ModelOptions& o) {
  sub.add_option("-m,--model-type", o.model_type, "Chunk size and classifier: 300 or 500")
      ->check(CLI::IsMember({300, 500}))
      ->capture_default_str();
  add_model_path_options(sub, o);
}

void add_model_path_options(CLI::App& sub, ModelOptions& o) {
  sub.add_option("--esm-model", o.esm, "ESM-2 model: file or folder (else VIRNUCPRO_ESM_MODEL, caches)");
  sub.add_option("--dnabert-model", o.dnabert, "DNABERT-S folder (else VIRNUCPRO_DNABERT_MODEL, caches)");
  sub.add_option("--classifier", o.classifier, "Classifier .pth (else VIRNUCPRO_CLASSIFIER_300/_500)");
}

pipeline::ModelPaths resolve_models(const ModelOptions& o) {
  using weights::ModelKind;
  const ModelKind classifier = o.model_type == 300 ? ModelKind::Classifier300 : ModelKind::Classifier500;
  return {weights::find_model(ModelKind::Esm2, flag_path(o.esm)).path,
          weights::find_model(ModelKind::Dnabert, flag_path(o.dnabert)).path,
          weights::find_model(classifier, flag_path(o.classifier)).path};
}

}  // namespace vnp::cli
